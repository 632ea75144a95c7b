/* cli_curve.h: `lcore-cli curve-keygen`, the key pair of one service instance for the CURVE
 * links (lc_curve.h). Called by lcore-cli's main. */
#ifndef CLI_CURVE_H
#define CLI_CURVE_H

/* argv[0] is "curve-keygen". Returns the process exit code. */
int cli_curve_keygen(int argc, char **argv);

#endif
