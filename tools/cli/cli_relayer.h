/* cli_relayer.h: `lcore-cli set-relayer ADDRESS`: the anchor contract's owner moves the relayer
 * role to another address (a new hot key), with a transaction signed by the owner's key file. */
#ifndef CLI_RELAYER_H
#define CLI_RELAYER_H

/* Exit code for main(): 0 done (relayer() now returns ADDRESS), 1 refused or failed, 2 usage. */
int cli_set_relayer(const char *address);

#endif
