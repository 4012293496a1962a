// The public header compiles alone in C++ (checked by the build).
#include <sharena.h>

int shr_header_check_cxx_unit();
int shr_header_check_cxx_unit() { return SHR_ECORRUPT; }
