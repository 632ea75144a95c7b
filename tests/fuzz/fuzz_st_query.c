/* fuzz_st_query.c: what the store checks of a query before its database (st_db_query_invalid,
 * st_letters_query_invalid): the Query is unpacked as the query link does, then routed as the
 * store's main routes it. A query refused there (and a ping) is answered without a connection
 * (st_db_answer / st_letters_answer with no database): BAD_REQUEST with a message, freed by
 * st_db_reply_clear (LeakSanitizer checks). What passes is checked here against the bounds the
 * database relies on. */
#include "st_admin.h"
#include "st_db.h"
#include "st_letters.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_support.h"
#include "lc_log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lc_log_init("fuzz_st_query", LC_LOG_ERROR);
    return 0;
}

/* An operator or reader body st_admin_invalid let through: the bounds its SQL relies on (a page
 * of 1..1000, a token id as the tokens table's CHECK wants it, an audited actor). */
static void s_check_admin(const Lcore__V1__Query *q)
{
    const Lcore__V1__Token *t = q->create_token;
    switch (q->body_case) {
    case LCORE__V1__QUERY__BODY_LIST_DEVICES:
        assert(q->list_devices->limit >= 1 && q->list_devices->limit <= ST_ADMIN_PAGE_MAX);
        break;
    case LCORE__V1__QUERY__BODY_LIST_RECORDS:
        assert(q->list_records->limit >= 1 && q->list_records->limit <= ST_ADMIN_PAGE_MAX);
        break;
    case LCORE__V1__QUERY__BODY_CREATE_TOKEN:
        assert(strlen(t->id) == 20 && t->hash.len == 32 && t->n_devices <= 1000);
        assert(strlen(q->actor) >= 1 && strlen(q->actor) <= 64);
        break;
    case LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS:
    case LCORE__V1__QUERY__BODY_ROTATE_KEY:
    case LCORE__V1__QUERY__BODY_DELETE_TOKEN:
        assert(strlen(q->actor) >= 1 && strlen(q->actor) <= 64);
        break;
    case LCORE__V1__QUERY__BODY_APPEND_AUDIT:
        assert(strcmp(q->append_audit->action, "open") == 0);
        break;
    default:
        break;
    }
}

/* A dead letter st_db_dead_letter_invalid let through: what the INSERT binds. */
static void s_check_dead_letter(const Lcore__V1__DeadLetter *dl)
{
    assert(dl->record_id.len == LC_RECORD_ID_LEN && dl->device_id && dl->gateway_id);
    assert(strlen(dl->gateway_id) >= 1 && strlen(dl->gateway_id) <= ST_GATEWAY_ID_MAX);
    assert(dl->attempts >= 1 && dl->attempts <= INT32_MAX && dl->reason && dl->reason[0]);
    int crypto = strcmp(dl->stage, "crypto") == 0;
    assert(crypto || strcmp(dl->stage, "store") == 0);
    assert(crypto ? !dl->sealed && dl->gateway_sealed.len : dl->sealed && !dl->gateway_sealed.len);
    if (dl->sealed)
        assert(dl->sealed->record_id.len == LC_RECORD_ID_LEN &&
               memcmp(dl->sealed->record_id.data, dl->record_id.data, LC_RECORD_ID_LEN) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = fz_copy(data, size);
    Lcore__V1__Query *q = in ? lcore__v1__query__unpack(NULL, size, in) : NULL;
    if (!q) {
        free(in);
        return 0;
    }
    int letters = q->body_case == LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS ||
                  q->body_case == LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS;
    const char *why = letters ? st_letters_query_invalid(q) : st_db_query_invalid(q);
    Lcore__V1__QueryReply reply = LCORE__V1__QUERY_REPLY__INIT;
    if (why || q->body_case == LCORE__V1__QUERY__BODY_PING) {
        if (letters) {
            st_letters_t none = {NULL, NULL, NULL};
            st_letters_answer(&none, q, &reply);
        } else {
            st_db_answer(NULL, q, size & 1, &reply);
        }
        assert(why ? reply.status == LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST &&
                         strcmp(reply.message, why) == 0
                   : reply.status != LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST);
        st_db_reply_clear(&reply);
    } else if (q->body_case == LCORE__V1__QUERY__BODY_DEAD_LETTER) {
        s_check_dead_letter(q->dead_letter);
    } else if (st_admin_owns(q->body_case)) {
        s_check_admin(q);
    } else if (q->body_case == LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS) {
        const Lcore__V1__DeadLetterReplay *rp = q->replay_dead_letters;
        assert(rp->n_record_ids >= 1 && rp->n_record_ids <= ST_LETTERS_REPLAY_MAX);
        for (size_t i = 0; i < rp->n_record_ids; i++)
            assert(rp->record_ids[i].len == LC_RECORD_ID_LEN);
    }
    lcore__v1__query__free_unpacked(q, NULL);
    free(in);
    return 0;
}
