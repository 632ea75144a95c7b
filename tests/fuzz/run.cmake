# cmake -DFUZZER=exe -DSEEDS=dir -DSCRATCH=dir -DSECONDS=n -P run.cmake: one bounded libFuzzer run
# (the ctest fuzz.<name>). The committed seeds are copied into a fresh scratch directory, which
# libFuzzer may grow; the run fails on any finding (libFuzzer exits non-zero and writes the
# input that triggered it next to the scratch directory: <scratch>-crash-<sha1>, -leak-, ...).
foreach(var FUZZER SEEDS SCRATCH SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... missing")
  endif()
endforeach()
file(REMOVE_RECURSE ${SCRATCH})
file(MAKE_DIRECTORY ${SCRATCH})
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${SCRATCH})
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10
    -print_final_stats=1 -artifact_prefix=${SCRATCH}- ${SCRATCH}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER}: exit ${rc} (finding above; input: ${SCRATCH}-*)")
endif()
