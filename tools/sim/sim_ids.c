/* sim_ids.c: record-id check and --record-ids file. See sim_ids.h. */
#include "sim_ids.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc_codec.h"
#include "lc_log.h"
#include "lc_record.h"
#include "sim_log.h"

struct sim_ids {
    FILE *out;
    sim_stats_t *stats;
    size_t buffered; /* bytes written to out since its last flush */
    sim_log_limit_t log_limit;
};

sim_ids_t *sim_ids_new(FILE *out, sim_stats_t *stats)
{
    sim_ids_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->out = out;
    self->stats = stats;
    return self;
}

void sim_ids_destroy(sim_ids_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sim_ids_flush(*self_p);
    free(*self_p);
    *self_p = NULL;
}

void sim_ids_flush(sim_ids_t *self)
{
    if (self->out && self->buffered > 0)
        fflush(self->out);
    self->buffered = 0;
}

/* Flushed before the stdio buffer could fill: what a reader sees ends with a whole line. */
static void s_append(sim_ids_t *self, const char *hex, size_t size)
{
    if (!self->out)
        return;
    if (self->buffered + size > SIM_IDS_BUFSIZE)
        sim_ids_flush(self);
    fprintf(self->out, "%s\n", hex);
    self->buffered += size;
}

/* Reading r's defined record id, hex; -1 when it cannot be encoded. */
static int s_defined(const sim_readings_t *readings, uint64_t r,
                     char want[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1], const char **id, uint64_t *seq)
{
    size_t id_len;
    sim_readings_identity(readings, r, id, &id_len, seq);
    uint8_t raw[LC_RECORD_ID_LEN];
    lc_record_id(raw, *id, id_len, *seq);
    return lc_hex_encode(want, LC_HEX_LEN(LC_RECORD_ID_LEN) + 1, raw, sizeof raw) < 0 ? -1 : 0;
}

void sim_ids_write(sim_ids_t *self, const sim_readings_t *readings, uint64_t r)
{
    const char *id;
    uint64_t seq;
    char want[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
    if (self->out && s_defined(readings, r, want, &id, &seq) == 0)
        s_append(self, want, sizeof want);
}

int sim_ids_accepted(sim_ids_t *self, const sim_readings_t *readings, uint64_t r, const char *got)
{
    const char *id;
    uint64_t seq;
    char want[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
    if (s_defined(readings, r, want, &id, &seq) < 0)
        return 1;
    int match = got && strlen(got) == LC_HEX_LEN(LC_RECORD_ID_LEN) && strcasecmp(got, want) == 0;
    if (!match) {
        sim_stats_record_id_mismatch(self->stats);
        /* got comes from the server: log only its leading hex digits */
        if (sim_log_may(&self->log_limit, "record_id mismatches"))
            lc_warn("record_id_mismatch", "device_id=%s seq=%llu want=%s got=%.*s", id,
                    (unsigned long long)seq, want,
                    got ? (int)strspn(got, "0123456789abcdefABCDEF") : 1, got ? got : "-");
    }
    s_append(self, want, sizeof want);
    return !match;
}
