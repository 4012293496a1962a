/* A library for the dlopen case of preload_check: it allocates in its
 * constructor and hands blocks across the library boundary both ways. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

char *plugin_make(const char *s);
void plugin_drop(char *s);

static char *made_at_load;
__attribute__((constructor)) static void load(void) { made_at_load = strdup("loaded"); }
__attribute__((destructor)) static void unload(void) { free(made_at_load); }

char *plugin_make(const char *s) { return strdup(s); }
void plugin_drop(char *s) { free(s); }
