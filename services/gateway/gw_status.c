/* gw_status.c: the completeness report's route and JSON. See gw_status.h. */
#include "gw_status.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lc_record.h"

int gw_status_path(const char *url, char *id, size_t cap)
{
    size_t pre = strlen(GW_STATUS_PREFIX), suf = strlen(GW_STATUS_SUFFIX), len = strlen(url);
    if (len < pre + suf || strncmp(url, GW_STATUS_PREFIX, pre) != 0 ||
        strcmp(url + len - suf, GW_STATUS_SUFFIX) != 0)
        return 0;
    size_t n = len - pre - suf;
    if (!id)
        return 1;
    id[0] = '\0';
    if (n < cap && lc_device_id_valid(url + pre, n)) {
        memcpy(id, url + pre, n);
        id[n] = '\0';
    }
    return 1;
}

static json_t *s_time(uint64_t us)
{
    if (us == 0)
        return json_null();
    time_t secs = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char out[64];
    snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(us % 1000000u / 1000u));
    return json_string(out);
}

static json_t *s_seq(int has, uint64_t seq)
{
    return has ? json_integer((json_int_t)seq) : json_null(); /* seqs are < 2^63 */
}

json_t *gw_status_json(const Lcore__V1__DeviceStatus *ds)
{
    json_t *gaps = json_array();
    for (size_t i = 0; gaps && i < ds->n_gaps; i++)
        json_array_append_new(
            gaps, json_pack("[I, I]", (json_int_t)ds->gaps[i]->from, (json_int_t)ds->gaps[i]->to));
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:b, s:o}", "device_id", ds->device_id, "status",
                     ds->status, "last_seq", s_seq(ds->has_seqs, ds->last_seq),
                     "contiguous_through", s_seq(ds->has_seqs, ds->contiguous_through), "gaps",
                     gaps, "gaps_capped", ds->gaps_capped, "last_seen", s_time(ds->last_seen_us));
}
