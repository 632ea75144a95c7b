/* test_gw_routes.c: the gateway's route table, bearer-token scopes and page cursors. Every
 * route of the table matches its own path on its own listener only; "{...}" takes exactly one
 * non-empty segment (copied out, or "" when it does not fit); a path with another method is a
 * 405, an unknown one a 404. A token's scope and device list say what it may read; a new token
 * has the shape of DESIGN's tokens and hashes to what the check hashes. A cursor reads back only
 * as its own kind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_handlers.h"
#include "gw_routes.h"
#include "gw_tokens.h"
#include "lc_token.h"

static gw_route_id_t s_match(gw_listener_t l, const char *method, const char *url, char *param,
                             int *wrong)
{
    return gw_routes_match(l, method, url, param, 160, wrong);
}

static void test_every_route_matches_itself(void **state)
{
    (void)state;
    for (int i = 0; i < GW_ROUTE_COUNT; i++) {
        const gw_route_t *r = &gw_routes[i];
        char url[256], param[160];
        const char *open = strchr(r->path, '{'), *close = open ? strchr(open, '}') : NULL;
        if (open)
            snprintf(url, sizeof url, "%.*sx-1%s", (int)(open - r->path), r->path, close + 1);
        else
            snprintf(url, sizeof url, "%s", r->path);
        int wrong = 0;
        assert_int_equal(s_match(r->listener, r->method, url, param, &wrong), i);
        assert_string_equal(param, open ? "x-1" : "");
        gw_listener_t other =
            r->listener == GW_LISTENER_DEVICE ? GW_LISTENER_ADMIN : GW_LISTENER_DEVICE;
        assert_int_equal(s_match(other, r->method, url, param, &wrong), GW_ROUTE_NONE);
    }
}

static void test_segments_and_methods(void **state)
{
    (void)state;
    char p[160];
    int wrong = 0;
    assert_int_equal(s_match(GW_LISTENER_DEVICE, "GET", "/v1/devices/d1/status", p, &wrong),
                     GW_ROUTE_DEVICE_STATUS);
    assert_string_equal(p, "d1");
    /* An empty segment, or two, is no device id. */
    assert_int_equal(s_match(GW_LISTENER_DEVICE, "GET", "/v1/devices//status", p, &wrong),
                     GW_ROUTE_NONE);
    assert_int_equal(wrong, 0);
    assert_int_equal(s_match(GW_LISTENER_DEVICE, "GET", "/v1/devices/a/b/status", p, &wrong),
                     GW_ROUTE_NONE);
    assert_int_equal(s_match(GW_LISTENER_DEVICE, "GET", "/v1/records/ab/receipt/", p, &wrong),
                     GW_ROUTE_NONE);
    /* The path is served with another method: 405, not 404. */
    assert_int_equal(s_match(GW_LISTENER_DEVICE, "GET", "/v1/data", p, &wrong), GW_ROUTE_NONE);
    assert_int_equal(wrong, 1);
    assert_int_equal(s_match(GW_LISTENER_ADMIN, "PUT", "/v1/tokens/tok_1", p, &wrong),
                     GW_ROUTE_NONE);
    assert_int_equal(wrong, 1);
    assert_int_equal(s_match(GW_LISTENER_ADMIN, "GET", "/v1/devices", p, &wrong),
                     GW_ROUTE_DEVICE_LIST);
    assert_int_equal(wrong, 0); /* POST /v1/devices came first in the table: still a match */
    assert_int_equal(s_match(GW_LISTENER_ADMIN, "POST", "/v1/devices", p, &wrong),
                     GW_ROUTE_REGISTER);
    assert_int_equal(s_match(GW_LISTENER_ADMIN, "GET", "/v1/devicesx", p, &wrong), GW_ROUTE_NONE);
    assert_int_equal(wrong, 0);
    /* A segment longer than the buffer is matched, and given as "" (a 400 for the handler). */
    char url[400];
    snprintf(url, sizeof url, "/v1/devices/%0200d/status", 7);
    assert_int_equal(gw_routes_match(GW_LISTENER_DEVICE, "GET", url, p, 129, &wrong),
                     GW_ROUTE_DEVICE_STATUS);
    assert_string_equal(p, "");
}

static void test_print_lists_every_route(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    gw_routes_print(f);
    fclose(f);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    assert_int_equal(lines, GW_ROUTE_COUNT + 3);
    assert_non_null(strstr(buf, "device GET /v1/records/{record_id}/receipt\n"));
    assert_non_null(strstr(buf, "admin DELETE /v1/tokens/{token_id}\n"));
    free(buf);
}

static void test_scopes_and_devices(void **state)
{
    (void)state;
    gw_token_t read = {.scope = GW_AUTH_READ}, dec = {.scope = GW_AUTH_DECRYPT},
               op = {.scope = GW_AUTH_OPERATOR};
    assert_true(gw_token_allows(&read, GW_AUTH_READ, "a"));
    assert_false(gw_token_allows(&read, GW_AUTH_DECRYPT, NULL));
    assert_true(gw_token_allows(&dec, GW_AUTH_READ, NULL)); /* decrypt includes read */
    assert_true(gw_token_allows(&dec, GW_AUTH_DECRYPT, NULL));
    assert_false(gw_token_allows(&dec, GW_AUTH_OPERATOR, NULL));
    assert_false(gw_token_allows(&op, GW_AUTH_READ, NULL)); /* operators are not readers */
    assert_true(gw_token_allows(&op, GW_AUTH_OPERATOR, NULL));
    static const char two[] = "dev-a\0dev-b";
    gw_token_t some = {.scope = GW_AUTH_READ, .devices = (char *)two, .n_devices = 2};
    assert_true(gw_token_allows(&some, GW_AUTH_READ, "dev-a"));
    assert_true(gw_token_allows(&some, GW_AUTH_READ, "dev-b"));
    assert_false(gw_token_allows(&some, GW_AUTH_READ, "dev-c"));
    assert_false(gw_token_allows(&some, GW_AUTH_READ, "dev-"));
    assert_true(gw_token_allows(&some, GW_AUTH_READ, NULL)); /* the route checks the device */
    assert_int_equal(gw_token_scope_parse("decrypt"), GW_AUTH_DECRYPT);
    assert_int_equal(gw_token_scope_parse("admin"), GW_AUTH_NONE);
    assert_int_equal(gw_token_scope_parse(NULL), GW_AUTH_NONE);
    assert_string_equal(gw_token_scope_name(GW_AUTH_OPERATOR), "operator");
}

static void test_generated_tokens(void **state)
{
    (void)state;
    char text[GW_TOKEN_TEXT_LEN + 1], id[GW_TOKEN_ID_MAX + 1], id2[GW_TOKEN_ID_MAX + 1];
    uint8_t hash[32], again[32];
    gw_tokens_generate(text, hash, id);
    assert_int_equal(strlen(text), GW_TOKEN_TEXT_LEN);
    assert_memory_equal(text, "lct_", 4);
    assert_int_equal(strlen(id), 20);
    assert_memory_equal(id, "tok_", 4);
    assert_int_equal(lc_token_hash(again, text, strlen(text)), 0);
    assert_memory_equal(hash, again, 32);
    gw_tokens_generate(text, again, id2);
    assert_memory_not_equal(hash, again, 32);
    assert_string_not_equal(id, id2);
}

/* The configured operator token checks out without a store; anything else that is not a
 * token's shape is a 401 without asking one. */
static void test_admin_token_without_store(void **state)
{
    (void)state;
    static const char tok[] = "0123456789abcdef0123456789abcdef";
    uint8_t h[32];
    assert_int_equal(lc_token_hash(h, tok, strlen(tok)), 0);
    lc_metrics_t *m = lc_metrics_new();
    gw_tokens_opts_t o = {.admin_hash = h, .rate = 1, .burst = 1, .metrics = m};
    gw_tokens_t *t = gw_tokens_new(&o);
    assert_non_null(t);
    gw_token_t out;
    char auth[80];
    snprintf(auth, sizeof auth, "Bearer %s", tok);
    assert_int_equal(gw_tokens_check(t, auth, NULL, &out), 0);
    assert_string_equal(out.id, "admin");
    assert_int_equal(out.scope, GW_AUTH_OPERATOR);
    gw_token_clear(&out);
    assert_int_equal(gw_tokens_check(t, NULL, NULL, &out), LC_ERR_NOTFOUND);
    assert_int_equal(gw_tokens_check(t, "Basic abc", NULL, &out), LC_ERR_NOTFOUND);
    assert_int_equal(gw_tokens_check(t, "Bearer short", NULL, &out), LC_ERR_NOTFOUND);
    gw_tokens_destroy(&t);
    assert_null(t);
    lc_metrics_destroy(&m);
}

static void test_cursors(void **state)
{
    (void)state;
    char c[GW_CURSOR_MAX];
    uint64_t v = 0;
    assert_int_equal(gw_cursor_make_u64(c, 1, 0x0102030405060708ull), 0);
    assert_int_equal(gw_cursor_parse_u64(c, 1, &v), 0);
    assert_true(v == 0x0102030405060708ull);
    assert_int_equal(gw_cursor_parse_u64(c, 3, &v), -1); /* another kind */
    assert_int_equal(gw_cursor_parse_u64("", 1, &v), -1);
    assert_int_equal(gw_cursor_parse_u64("!!!", 1, &v), -1);
    assert_int_equal(gw_cursor_parse_u64("AQ", 1, &v), -1); /* the kind alone */
    char id[64];
    assert_int_equal(gw_cursor_make(c, 2, "dev-9", 5), 0);
    assert_int_equal(gw_cursor_parse(c, 2, id, sizeof id), 5);
    assert_memory_equal(id, "dev-9", 5);
    assert_int_equal(gw_cursor_parse(c, 2, id, 4), -1); /* does not fit */
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_matches_itself),
        cmocka_unit_test(test_segments_and_methods),
        cmocka_unit_test(test_print_lists_every_route),
        cmocka_unit_test(test_scopes_and_devices),
        cmocka_unit_test(test_generated_tokens),
        cmocka_unit_test(test_admin_token_without_store),
        cmocka_unit_test(test_cursors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
