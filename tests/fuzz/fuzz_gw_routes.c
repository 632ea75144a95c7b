/* fuzz_gw_routes.c: what the gateway makes of a request line before any handler runs: the route
 * of (listener, method, path) (gw_routes.h) and the page cursors of the query string
 * (gw_handlers.h). Input: byte 0 picks the listener and the method, the rest is the path, or a
 * cursor. Checks: a match is a route of that listener and method whose template fits the path,
 * the "{...}" segment copied out is a non-empty segment of the path (or "" when too long), never
 * a '/'; a cursor parses only as its own kind, and what parses makes the same text again. */
#include "gw_handlers.h"
#include "gw_routes.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const s_methods[] = {"GET", "POST", "DELETE", "PUT"};

static void s_route(uint8_t sel, const char *path)
{
    gw_listener_t l = (sel & 1) ? GW_LISTENER_ADMIN : GW_LISTENER_DEVICE;
    const char *method = s_methods[(sel >> 1) & 3];
    char param[129];
    int wrong = 0;
    gw_route_id_t r = gw_routes_match(l, method, path, param, sizeof param, &wrong);
    if (r == GW_ROUTE_NONE) {
        assert(param[0] == '\0');
        return;
    }
    assert(r < GW_ROUTE_COUNT && !wrong);
    assert(gw_routes[r].listener == l && strcmp(gw_routes[r].method, method) == 0);
    assert(strchr(param, '/') == NULL);
    assert(param[0] == '\0' || strstr(path, param) != NULL);
    assert((strchr(gw_routes[r].path, '{') != NULL) || param[0] == '\0');
}

static void s_cursor(uint8_t kind, const char *text)
{
    uint8_t pos[256];
    int n = gw_cursor_parse(text, kind, pos, sizeof pos);
    if (n < 0)
        return;
    char again[GW_CURSOR_MAX];
    assert(gw_cursor_make(again, kind, pos, (size_t)n) == 0);
    assert(strcmp(again, text) == 0);
    assert(gw_cursor_parse(text, (uint8_t)(kind + 1), pos, sizeof pos) < 0);
    uint64_t v;
    if (gw_cursor_parse_u64(text, kind, &v) == 0) {
        assert(n == 8);
        assert(gw_cursor_make_u64(again, kind, v) == 0 && strcmp(again, text) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *text = malloc(size);
    assert(text);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0'; /* libmicrohttpd hands the path over NUL-terminated */
    if (data[0] & 0x80)
        s_cursor((uint8_t)(data[0] & 0x7f), text);
    else
        s_route(data[0], text);
    free(text);
    return 0;
}
