/* Fault points inside the library (see include/sharena/fault.h).
 *
 *   if (SHR_FAULT(OBJ_ALLOC)) return NULL;   // "fail" fired here
 *
 * SHR_FAULT(ID) is 0 unless point SHR_FP_ID is armed and this is its nth hit:
 * then "kill" and "stop" act inside the call, and "fail" makes it return 1 so
 * that the site fails as it would for real. In release builds (SHR_DEBUG == 0)
 * it is the constant 0 and the site compiles to nothing.
 */
#ifndef SHR_FAULT_H
#define SHR_FAULT_H

#include <stdatomic.h>

#include "common.h"
#include "sharena/fault.h"

#if SHR_DEBUG >= 1
/* Nonzero while any point is armed: the one load an unarmed point costs. */
extern atomic_uint shr__fault_armed;
int shr__fault_hit(shr_fault_point_t id);
#define SHR_FAULT(id)                                                                \
    (shr_unlikely(atomic_load_explicit(&shr__fault_armed, memory_order_relaxed))    \
         ? shr__fault_hit(SHR_FP_##id)                                               \
         : 0)
#else
#define SHR_FAULT(id) 0
#endif

#endif /* SHR_FAULT_H */
