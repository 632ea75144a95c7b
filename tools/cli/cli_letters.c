/* cli_letters.c: see cli_letters.h. */
#include "cli_letters.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli_store.h"
#include "lc_codec.h"
#include "lc_record.h"

#define S_PAGE 1000
#define S_REPLAY_CHUNK 100 /* the store's bound on one replay */

/* One page of dead letters after `after` (NULL: from the start). NULL after saying why. */
static Lcore__V1__QueryReply *s_page(cli_store_t *st, const uint8_t *after, int unresolved_only)
{
    Lcore__V1__DeadLetterList l = LCORE__V1__DEAD_LETTER_LIST__INIT;
    l.after = (ProtobufCBinaryData){after ? LC_RECORD_ID_LEN : 0, (uint8_t *)after};
    l.limit = S_PAGE;
    l.unresolved_only = unresolved_only;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS;
    q.list_dead_letters = &l;
    return cli_store_ask(st, &q, NULL);
}

static void s_print(const Lcore__V1__DeadLetter *dl)
{
    char hex[2 * LC_RECORD_ID_LEN + 1] = "?", when[32] = "?";
    if (dl->record_id.len == LC_RECORD_ID_LEN)
        lc_hex_encode(hex, sizeof hex, dl->record_id.data, LC_RECORD_ID_LEN);
    time_t t = (time_t)(dl->created_at_us / 1000000u);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("record_id=%s device_id=%s seq=%llu stage=%s attempts=%u gateway_id=%s "
           "created_at=%s resolved=%s reason=\"%s\"\n",
           hex, dl->device_id, (unsigned long long)dl->seq, dl->stage, dl->attempts, dl->gateway_id,
           when, dl->resolved ? "yes" : "no", dl->reason);
}

/* Calls each(arg, page) for every page; 0, or 1 when the store did not answer. */
static int s_each_page(cli_store_t *st, int unresolved_only,
                       int (*each)(void *arg, const Lcore__V1__QueryReply *page), void *arg)
{
    uint8_t after[LC_RECORD_ID_LEN];
    int have_after = 0;
    for (;;) {
        Lcore__V1__QueryReply *r = s_page(st, have_after ? after : NULL, unresolved_only);
        if (!r)
            return 1;
        size_t n = r->n_dead_letters;
        int rc = n ? each(arg, r) : 0;
        if (n && r->dead_letters[n - 1]->record_id.len == LC_RECORD_ID_LEN) {
            memcpy(after, r->dead_letters[n - 1]->record_id.data, LC_RECORD_ID_LEN);
            have_after = 1;
        }
        lcore__v1__query_reply__free_unpacked(r, NULL);
        if (rc || n < S_PAGE || !have_after)
            return rc;
    }
}

static int s_print_page(void *arg, const Lcore__V1__QueryReply *page)
{
    size_t *count = arg;
    for (size_t i = 0; i < page->n_dead_letters; i++)
        s_print(page->dead_letters[i]);
    *count += page->n_dead_letters;
    return 0;
}

typedef struct {
    cli_store_t *st;
    unsigned store, gateway, skipped;
} s_replayed_t;

/* Replays ids[0..n), n <= S_REPLAY_CHUNK. 0, or 1 after saying why. */
static int s_replay_ids(s_replayed_t *out, ProtobufCBinaryData *ids, size_t n)
{
    Lcore__V1__DeadLetterReplay rp = LCORE__V1__DEAD_LETTER_REPLAY__INIT;
    rp.record_ids = ids;
    rp.n_record_ids = n;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS;
    q.replay_dead_letters = &rp;
    Lcore__V1__QueryReply *r = cli_store_ask(out->st, &q, NULL);
    if (!r)
        return 1;
    out->store += r->replayed_store;
    out->gateway += r->replayed_gateway;
    out->skipped += r->replay_skipped;
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return 0;
}

static int s_replay_page(void *arg, const Lcore__V1__QueryReply *page)
{
    ProtobufCBinaryData ids[S_REPLAY_CHUNK];
    for (size_t i = 0; i < page->n_dead_letters; i += S_REPLAY_CHUNK) {
        size_t n = 0;
        for (size_t k = i; k < page->n_dead_letters && n < S_REPLAY_CHUNK; k++)
            ids[n++] = page->dead_letters[k]->record_id;
        if (s_replay_ids(arg, ids, n))
            return 1;
    }
    return 0;
}

/* The RECORD_IDs given, in chunks. 0, 1 (store), 2 (a bad id). */
static int s_replay_given(s_replayed_t *out, int argc, char **argv)
{
    uint8_t raw[S_REPLAY_CHUNK][LC_RECORD_ID_LEN];
    ProtobufCBinaryData ids[S_REPLAY_CHUNK];
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        if (lc_record_id_parse(raw[n], argv[i], strlen(argv[i])) != 0) {
            fprintf(stderr, "lcore-cli dead-letters: %s is not a record id (64 hex digits)\n",
                    argv[i]);
            return 2;
        }
        ids[n] = (ProtobufCBinaryData){LC_RECORD_ID_LEN, raw[n]};
        if (++n == S_REPLAY_CHUNK || i == argc - 1) {
            if (s_replay_ids(out, ids, n))
                return 1;
            n = 0;
        }
    }
    return 0;
}

int cli_letters(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "";
    int all = argc == 3 && strcmp(argv[2], "--all") == 0;
    int list = strcmp(sub, "list") == 0 && (argc == 2 || all);
    if (!list && strcmp(sub, "replay") != 0) {
        fprintf(stderr, "lcore-cli dead-letters: usage: dead-letters list [--all] | "
                        "dead-letters replay [RECORD_ID...]\n");
        return 2;
    }
    cli_store_t st;
    int rc = cli_store_open(&st, "dead-letters") == 0 ? 0 : 1;
    if (rc == 0 && list) {
        size_t count = 0;
        rc = s_each_page(&st, !all, s_print_page, &count);
        fprintf(stderr, "%zu dead letter(s)%s\n", count, all ? "" : " unresolved");
    } else if (rc == 0) {
        s_replayed_t out = {.st = &st};
        rc = argc > 2 ? s_replay_given(&out, argc - 2, argv + 2)
                      : s_each_page(&st, 1, s_replay_page, &out);
        printf("replayed_store=%u replayed_gateway=%u skipped=%u\n", out.store, out.gateway,
               out.skipped);
        if (out.gateway)
            fprintf(stderr, "gateway-sealed readings went back to their gateways, which log "
                            "them again: `dead-letters list` shows them resolved once stored\n");
    }
    cli_store_close(&st);
    return rc;
}
