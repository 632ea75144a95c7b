/* cli_letters.h: `lcore-cli dead-letters list [--all]` and `lcore-cli dead-letters replay
 * [RECORD_ID...]` over the store's query link (operator role, cli_store.h).
 *   list    one line per dead letter, oldest first: the unresolved ones (their record is not
 *           stored), or with --all every one. No reading is shown: the store keeps it sealed.
 *   replay  the given dead letters, or every unresolved one, back through the pipeline once
 *           the cause is fixed: a worker-sealed record is written by the store again, a
 *           gateway-sealed reading goes back to its gateway, which logs it again (the gateway
 *           must be running). Replaying twice is harmless: the store absorbs duplicates. */
#ifndef CLI_LETTERS_H
#define CLI_LETTERS_H

/* argv[0] is "dead-letters". Exit code: 0 done, 1 the store did not answer or refused, 2 usage. */
int cli_letters(int argc, char **argv);

#endif
