/* cli_curve.c: see cli_curve.h. */
#include "cli_curve.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lc_curve.h"
#include "lc_record.h"

/* Copies the public certificate src into dir/role/name.cert (written aside, then renamed, so a
 * service watching the directory never reads half a file). */
static int s_install(const char *src, const char *dir, const char *role, const char *name)
{
    char role_dir[1024], tmp[1400], dst[1400];
    snprintf(role_dir, sizeof role_dir, "%s/%s", dir, role);
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(role_dir, 0755) != 0 && errno != EEXIST))
        return -1;
    snprintf(tmp, sizeof tmp, "%s/.%s.cert.tmp", role_dir, name);
    snprintf(dst, sizeof dst, "%s/%s.cert", role_dir, name);
    FILE *in = fopen(src, "r"), *out = in ? fopen(tmp, "w") : NULL;
    char buf[4096];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    if (rc == 0 && (chmod(tmp, 0644) != 0 || rename(tmp, dst) != 0))
        rc = -1;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int cli_curve_keygen(int argc, char **argv)
{
    const char *role = NULL, *name = NULL, *out = NULL, *trust = NULL;
    static const struct option opts[] = {{"role", required_argument, 0, 'r'},
                                         {"name", required_argument, 0, 'n'},
                                         {"out", required_argument, 0, 'o'},
                                         {"trust-dir", required_argument, 0, 't'},
                                         {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "r:n:o:t:", opts, NULL)) != -1;) {
        if (c == 'r')
            role = optarg;
        else if (c == 'n')
            name = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 't')
            trust = optarg;
        else
            return 2;
    }
    if (!role || !lc_role_from_name(role) || !name || !lc_device_id_valid(name, strlen(name)) ||
        !out) {
        fprintf(stderr,
                "lcore-cli curve-keygen: --role gateway|crypto|store|chain|operator, --name NAME "
                "([A-Za-z0-9._:-]) and --out DIR are needed\n");
        return 2;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.cert", out, name);
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        perror(out);
        return 1;
    }
    int rc = lc_curve_keygen(path, role, name);
    if (rc < 0) {
        fprintf(stderr, "lcore-cli curve-keygen: %s: %s\n", path,
                rc == LC_ERR_CONFLICT ? "exists already" : lc_strerror(rc));
        return 1;
    }
    if (trust && s_install(path, trust, role, name) != 0) {
        fprintf(stderr, "lcore-cli curve-keygen: cannot install %s into %s/%s/\n", path, trust,
                role);
        return 1;
    }
    printf("LCORE_CURVE_CERT=%s_secret\n", path);
    return 0;
}
