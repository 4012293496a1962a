# The malloc and free fast paths need no stack frame (alloc/alloc.c,
# malloc_fast and shr_free): every rare case leaves through a tail call.
# This disassembles the library's shr_malloc and shr_free and fails when a
# push, an enter or a stack adjustment comes before the function's first
# ret (the fast path's return). Run for optimised, uninstrumented builds
# (SHR_DEBUG 0, no sanitizer); skipped (a "SKIP:" line) without objdump or
# off x86-64.
#
#   cmake -DLIB=<libsharena.so> -DOBJDUMP=<objdump> -DARCH=<processor> -P frameless.cmake
if(NOT OBJDUMP OR NOT EXISTS "${OBJDUMP}")
  message("SKIP: no objdump")
  return()
endif()
if(NOT ARCH MATCHES "x86_64|AMD64")
  message("SKIP: the check reads x86-64 code")
  return()
endif()
set(failed "")
foreach(fn shr_malloc shr_free)
  execute_process(COMMAND "${OBJDUMP}" -d --no-show-raw-insn "--disassemble=${fn}" "${LIB}"
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message("SKIP: ${OBJDUMP} cannot disassemble ${fn}: ${err}")
    return()
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  set(in_fn FALSE)
  set(seen_ret FALSE)
  set(prologue "")
  set(ninsn 0)
  foreach(line IN LISTS lines)
    if(line MATCHES "<${fn}>:$")
      set(in_fn TRUE)
    elseif(in_fn AND NOT seen_ret AND line MATCHES "^ *[0-9a-f]+:[ \t]+([a-z].*)$")
      set(insn "${CMAKE_MATCH_1}")
      math(EXPR ninsn "${ninsn} + 1")
      if(insn MATCHES "^ret")
        set(seen_ret TRUE)
      elseif(insn MATCHES "^(push|enter)" OR insn MATCHES "^(sub|add|lea)[a-z]* .*,%rsp$")
        string(APPEND prologue "    ${insn}\n")
      endif()
    endif()
  endforeach()
  if(NOT in_fn OR NOT seen_ret)
    string(APPEND failed "${fn}: no fast-path ret found (${ninsn} instructions read)\n")
  elseif(prologue)
    string(APPEND failed "${fn}: the fast path sets up a stack frame before its ret:\n${prologue}")
  else()
    message("${fn}: frameless fast path, ${ninsn} instructions up to the first ret")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "${failed}")
endif()
