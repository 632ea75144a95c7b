/* test_sim_track.c: lcore-sim's MQTT side without a broker. Results are matched to their
 * readings by device and seq (one object, an array, or one a line), counted by what they say
 * (accepted, an error name as the HTTP status it names), duplicates, late and unmatched results
 * apart; messages in flight are accounted until every reading is answered, refused or timed out;
 * the summary shows it all; the mqtt-batch layout gives each message one device's consecutive
 * seqs; broker URLs parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_log.h"
#include "lc_record.h"
#include "sim_ids.h"
#include "sim_mqtt.h"
#include "sim_track.h"

#define TIMEOUT_US 1000000u

typedef struct {
    sim_devices_t *devices;
    sim_readings_t *readings;
    sim_stats_t *stats;
    sim_ids_t *ids;
    sim_track_t *track;
    char *ids_buf;
    size_t ids_len;
    FILE *ids_out;
} fx_t;

static void s_fx_new(fx_t *fx, sim_mode_t mode, size_t n_dev, uint64_t count, uint32_t batch)
{
    memset(fx, 0, sizeof *fx);
    fx->devices = sim_devices_new("dev", n_dev, SIM_ALG_EDDSA);
    assert_non_null(fx->devices);
    sim_readings_opts_t o = {
        .mode = mode, .count = count, .batch_size = batch, .payload_bytes = 16, .seq_start = 1};
    fx->readings = sim_readings_new(fx->devices, &o);
    assert_non_null(fx->readings);
    fx->stats = sim_stats_new(1);
    fx->ids_out = open_memstream(&fx->ids_buf, &fx->ids_len);
    fx->ids = sim_ids_new(fx->ids_out, fx->stats);
    fx->track = sim_track_new(fx->readings, fx->stats, fx->ids, TIMEOUT_US);
    assert_non_null(fx->track);
}

static void s_fx_free(fx_t *fx)
{
    sim_track_destroy(&fx->track);
    sim_ids_destroy(&fx->ids);
    fclose(fx->ids_out);
    free(fx->ids_buf);
    sim_stats_destroy(&fx->stats);
    sim_readings_destroy(&fx->readings);
    sim_devices_destroy(&fx->devices);
}

/* The value of `key` in the summary (its first line `key=`), as an integer. */
static long long s_key(const fx_t *fx, const char *key)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fputc('\n', f); /* every key, the first one too, follows a newline */
    sim_stats_report(fx->stats, f, 1.0);
    fclose(f);
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s=", key);
    const char *at = strstr(text, pat);
    long long v = at ? strtoll(at + strlen(pat), NULL, 10) : -1;
    free(text);
    return v;
}

static void s_record_id(char out[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1], const char *dev, uint64_t seq)
{
    uint8_t raw[LC_RECORD_ID_LEN];
    lc_record_id(raw, dev, strlen(dev), seq);
    assert_int_equal(lc_hex_encode(out, LC_HEX_LEN(LC_RECORD_ID_LEN) + 1, raw, sizeof raw), 0);
}

/* An accepted result of device `dev` (index) for seq, with the right record id. */
static size_t s_accept(fx_t *fx, size_t dev, uint64_t seq, uint64_t now)
{
    char rid[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1], msg[256];
    s_record_id(rid, sim_devices_id(fx->devices, dev), seq);
    snprintf(msg, sizeof msg, "{\"seq\":%llu,\"record_id\":\"%s\",\"status\":\"accepted\"}",
             (unsigned long long)seq, rid);
    return sim_track_result_message(fx->track, dev, msg, strlen(msg), now);
}

static size_t s_message(fx_t *fx, size_t dev, const char *msg, uint64_t now)
{
    return sim_track_result_message(fx->track, dev, msg, strlen(msg), now);
}

/* Round-robin: reading r is device r % 3, seq 1 + r / 3; a job is a reading. */
static void test_results_match_by_device_and_seq(void **state)
{
    (void)state;
    fx_t fx;
    s_fx_new(&fx, SIM_MODE_MQTT, 3, 9, 1);
    for (size_t j = 0; j < 6; j++)
        sim_track_published(fx.track, j, 1000 * j);
    assert_int_equal(sim_track_in_flight(fx.track), 6);
    assert_int_equal(s_accept(&fx, 1, 2, 10000), 1); /* reading 4 */
    assert_int_equal(s_accept(&fx, 0, 1, 10000), 1); /* reading 0, out of order */
    assert_int_equal(sim_track_in_flight(fx.track), 4);
    assert_int_equal(s_accept(&fx, 1, 2, 10500), 0);  /* the same again */
    assert_int_equal(s_accept(&fx, 2, 3, 10500), 0);  /* reading 8: not published yet */
    assert_int_equal(s_accept(&fx, 2, 99, 10500), 0); /* no such reading in this run */
    assert_int_equal(s_message(&fx, 7, "{\"seq\":1,\"status\":\"accepted\"}", 10500),
                     0); /* no such device */
    assert_int_equal(s_key(&fx, "sent"), 6);
    assert_int_equal(s_key(&fx, "accepted"), 2);
    assert_int_equal(s_key(&fx, "responses"), 2);
    assert_int_equal(s_key(&fx, "results_duplicate"), 1);
    assert_int_equal(s_key(&fx, "results_unmatched"), 3);
    assert_int_equal(s_key(&fx, "record_id_mismatch"), 0);
    /* publish -> result: reading 0 published at 0, answered at 10000 us */
    assert_int_equal(s_key(&fx, "max_ms"), 10);
    /* the record-id file holds the accepted readings' ids, whole lines */
    char want[2 * (LC_HEX_LEN(LC_RECORD_ID_LEN) + 1) + 1], a[65], b[65];
    s_record_id(a, "dev-1", 2);
    s_record_id(b, "dev-0", 1);
    snprintf(want, sizeof want, "%s\n%s\n", a, b);
    sim_ids_flush(fx.ids);
    assert_string_equal(fx.ids_buf, want);
    s_fx_free(&fx);
}

static void test_error_names_count_as_their_status(void **state)
{
    (void)state;
    fx_t fx;
    s_fx_new(&fx, SIM_MODE_MQTT, 1, 6, 1);
    for (size_t j = 0; j < 6; j++)
        sim_track_published(fx.track, j, 0);
    s_message(&fx, 0, "{\"seq\":1,\"error\":\"seq_conflict\",\"message\":\"x\"}", 5);
    s_message(&fx, 0, "{\"seq\":2,\"error\":\"overloaded\",\"message\":\"x\"}", 5);
    s_message(&fx, 0, "{\"seq\":3,\"error\":\"bad_signature\",\"message\":\"x\"}", 5);
    s_message(&fx, 0, "{\"seq\":4,\"error\":\"brand_new\",\"message\":\"x\"}", 5);
    s_message(&fx, 0, "{\"seq\":5,\"status\":\"accepted\",\"record_id\":\"00\"}", 5);
    s_message(&fx, 0, "{\"seq\":6}", 5); /* neither accepted nor an error */
    assert_int_equal(sim_track_in_flight(fx.track), 0);
    assert_int_equal(s_key(&fx, "rejected"), 3);
    assert_int_equal(s_key(&fx, "rejected_409"), 1);
    assert_int_equal(s_key(&fx, "rejected_401"), 1);
    assert_int_equal(s_key(&fx, "rejected_0"), 1);
    assert_int_equal(s_key(&fx, "backpressure_503"), 1);
    assert_int_equal(s_key(&fx, "accepted"), 1);
    assert_int_equal(s_key(&fx, "record_id_mismatch"), 1);
    assert_int_equal(s_key(&fx, "errors"), 1);
    assert_int_equal(sim_track_error_status("rate_limited"), 429);
    assert_int_equal(sim_track_error_status("unknown_device"), 403);
    s_fx_free(&fx);
}

static void test_timeout_then_late_result(void **state)
{
    (void)state;
    fx_t fx;
    s_fx_new(&fx, SIM_MODE_MQTT, 2, 4, 1);
    sim_track_published(fx.track, 0, 0);
    sim_track_published(fx.track, 1, 500000);
    assert_int_equal(sim_track_expire(fx.track, 400000), TIMEOUT_US - 400000);
    assert_int_equal(sim_track_expire(fx.track, TIMEOUT_US), 500000); /* job 0 gone */
    assert_int_equal(sim_track_in_flight(fx.track), 1);
    assert_int_equal(s_accept(&fx, 0, 1, TIMEOUT_US + 1), 0); /* after it was given up */
    assert_int_equal(s_accept(&fx, 1, 1, TIMEOUT_US + 1), 1);
    assert_int_equal(sim_track_expire(fx.track, 10 * TIMEOUT_US), UINT64_MAX);
    assert_int_equal(s_key(&fx, "results_missing"), 1);
    assert_int_equal(s_key(&fx, "results_late"), 1);
    assert_int_equal(s_key(&fx, "errors"), 1);
    assert_int_equal(s_key(&fx, "unanswered"), 0); /* set by the caller at the end */
    assert_int_equal(sim_track_unanswered(fx.track), 1);
    assert_int_equal(s_key(&fx, "accepted"), 1);
    s_fx_free(&fx);
}

static void test_puback_refused_and_unsent(void **state)
{
    (void)state;
    fx_t fx;
    s_fx_new(&fx, SIM_MODE_MQTT, 1, 3, 1);
    sim_track_published(fx.track, 0, 0);
    sim_track_unsent(fx.track, 1);
    sim_track_published(fx.track, 2, 0);
    sim_track_puback(fx.track, 0, 0x87, 2000); /* not authorized */
    sim_track_puback(fx.track, 2, 0, 3000);
    assert_int_equal(sim_track_in_flight(fx.track), 1);
    assert_int_equal(s_key(&fx, "puback_refused"), 1);
    assert_int_equal(s_key(&fx, "publish_failed"), 1);
    assert_int_equal(s_key(&fx, "errors"), 2);
    assert_int_equal(s_key(&fx, "pubacks"), 1);
    assert_int_equal(s_key(&fx, "puback_max_ms"), 3);
    assert_int_equal(s_key(&fx, "sent"), 3);
    s_fx_free(&fx);
}

/* mqtt-batch: a message carries B consecutive seqs of one device; devices take turns. */
/* --puback-ids: the ids of the readings whose message the broker acknowledged with reason code 0,
 * each reading of a batch message; a refused one (>= 0x80) or "no matching subscribers" (16) is
 * not written. */
static void test_puback_ids(void **state)
{
    (void)state;
    fx_t fx;
    s_fx_new(&fx, SIM_MODE_MQTT_BATCH, 2, 8, 2); /* 4 jobs of 2 readings */
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    sim_ids_t *pub = sim_ids_new(out, fx.stats);
    sim_track_set_puback_ids(fx.track, pub);
    for (size_t j = 0; j < 4; j++)
        sim_track_published(fx.track, j, 1000 * j);
    sim_track_puback(fx.track, 0, 0, 5000);
    sim_track_puback(fx.track, 1, 0x87, 5000);
    sim_track_puback(fx.track, 2, 16, 5000);
    sim_track_puback(fx.track, 3, 0, 5000);
    sim_ids_destroy(&pub);
    fclose(out);
    char want[4 * (LC_HEX_LEN(LC_RECORD_ID_LEN) + 1) + 1] = "";
    for (size_t job = 0; job < 4; job += 3) {
        uint64_t first = sim_readings_first(fx.readings, job);
        for (uint64_t r = first; r < first + 2; r++) {
            const char *id;
            size_t id_len;
            uint64_t seq;
            char rid[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
            sim_readings_identity(fx.readings, r, &id, &id_len, &seq);
            s_record_id(rid, id, seq);
            strcat(want, rid);
            strcat(want, "\n");
        }
    }
    assert_string_equal(buf, want);
    assert_int_equal(s_key(&fx, "record_id_mismatch"), 0);
    free(buf);
    s_fx_free(&fx);
}

static void test_batch_layout_and_result_shapes(void **state)
{
    (void)state;
    fx_t fx;
    s_fx_new(&fx, SIM_MODE_MQTT_BATCH, 2, 10, 4);
    size_t n_jobs;
    const sim_job_t *jobs = sim_readings_jobs(fx.readings, &n_jobs);
    assert_int_equal(n_jobs, 3);
    assert_int_equal(jobs[2].units, 2);
    static const size_t dev_of_job[] = {0, 1, 0};
    static const uint64_t first_seq[] = {1, 1, 5};
    for (size_t j = 0; j < n_jobs; j++) {
        uint64_t first = sim_readings_first(fx.readings, j);
        for (uint32_t k = 0; k < jobs[j].units; k++) {
            const char *id;
            size_t id_len;
            uint64_t seq, r;
            sim_readings_identity(fx.readings, first + k, &id, &id_len, &seq);
            assert_int_equal(sim_readings_device(fx.readings, first + k), dev_of_job[j]);
            assert_string_equal(id, sim_devices_id(fx.devices, dev_of_job[j]));
            assert_int_equal(seq, first_seq[j] + k);
            assert_int_equal(sim_readings_find(fx.readings, dev_of_job[j], seq, &r), 0);
            assert_int_equal(r, first + k);
            assert_int_equal(sim_readings_job(fx.readings, r), j);
        }
        /* one JWS a line, no trailing newline */
        size_t lines = 1;
        for (size_t b = 0; b < jobs[j].body_len; b++)
            lines += jobs[j].body[b] == '\n';
        assert_int_equal(lines, jobs[j].units);
        sim_track_published(fx.track, j, 0);
    }
    uint64_t r;
    assert_int_equal(sim_readings_find(fx.readings, 1, 5, &r), -1); /* device 1 has seqs 1..4 */
    /* an array, then objects one a line with an unreadable tail */
    assert_int_equal(s_message(&fx, 0,
                               "[{\"seq\":1,\"status\":\"accepted\"},"
                               "{\"seq\":2,\"error\":\"malformed\",\"message\":\"m\"}]",
                               1),
                     2);
    assert_int_equal(s_message(&fx, 0,
                               "{\"seq\":3,\"status\":\"accepted\"}\n"
                               "{\"seq\":4,\"status\":\"accepted\"}\nnot json",
                               1),
                     2);
    assert_int_equal(sim_track_in_flight(fx.track), 2); /* job 0 answered in full */
    assert_int_equal(s_message(&fx, 1, "", 1), 0);
    assert_int_equal(s_message(&fx, 1, "{}", 1), 0);
    assert_int_equal(s_key(&fx, "results_unmatched"), 3);
    assert_int_equal(s_key(&fx, "rejected_400"), 1);
    s_fx_free(&fx);
}

static void test_mqtt_url(void **state)
{
    (void)state;
    char host[SIM_MQTT_HOST_MAX];
    int port, tls;
    assert_int_equal(sim_mqtt_url_parse("mqtt://127.0.0.1:1884", host, &port, &tls), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 1884);
    assert_int_equal(tls, 0);
    assert_int_equal(sim_mqtt_url_parse("mqtts://broker.example/", host, &port, &tls), 0);
    assert_string_equal(host, "broker.example");
    assert_int_equal(port, 8883);
    assert_int_equal(tls, 1);
    assert_int_equal(sim_mqtt_url_parse("mqtt://[::1]:1900", host, &port, &tls), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1900);
    assert_int_equal(sim_mqtt_url_parse("http://h:1883", host, &port, &tls), -1);
    assert_int_equal(sim_mqtt_url_parse("mqtt://", host, &port, &tls), -1);
    assert_int_equal(sim_mqtt_url_parse("mqtt://h:0", host, &port, &tls), -1);
    assert_int_equal(sim_mqtt_url_parse("mqtt://h:1883/x", host, &port, &tls), -1);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    lc_log_init("test_sim_track", LC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_match_by_device_and_seq),
        cmocka_unit_test(test_error_names_count_as_their_status),
        cmocka_unit_test(test_timeout_then_late_result),
        cmocka_unit_test(test_puback_refused_and_unsent),
        cmocka_unit_test(test_puback_ids),
        cmocka_unit_test(test_batch_layout_and_result_shapes),
        cmocka_unit_test(test_mqtt_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
