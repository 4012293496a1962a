/* The public header compiles alone in C (checked by the build). */
#include <sharena.h>

int shr_header_check_c_unit(void);
int shr_header_check_c_unit(void) { return SHR_ECORRUPT; }
