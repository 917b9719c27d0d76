# run_mpi.cmake — data-parallel training is the single-process training: `train` with batch B
# against `mpirun -np 2 train_mpi` with the same global batch B and seed (1 thread per rank) on a
# small generated text, for every zero_stage x overlap_comm, and checkpoints resumed on another
# number of ranks (2-rank ZeRO-1 -> 1 process, 1 process -> 2-rank ZeRO-1). Summation order differs (two half-batch means averaged, an allreduce), so
# the comparison is within float tolerance, not bitwise: every logged loss and every float in the
# final checkpoints (weights and AdamW moments).
#
#   cmake -DPREPARE=... -DTRAIN=... -DTRAIN_MPI=... -DMPIEXEC=... -DPYTHON=... -DWORK_DIR=...
#         -P run_mpi.cmake

cmake_minimum_required(VERSION 3.21)
include("${CMAKE_CURRENT_LIST_DIR}/sample_text.cmake")

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
        WORKING_DIRECTORY "${WORK_DIR}")
    if(NOT rc EQUAL 0)
        string(JOIN " " shown ${ARGN})
        message(FATAL_ERROR "failed (${rc}): ${shown}\nstdout:\n${out}\nstderr:\n${err}")
    endif()
    set(output "${out}${err}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
write_sample_text("${WORK_DIR}")
run("${PREPARE}" --input=input.txt --out_dir=data)

# dropout = 0: dropout masks are drawn per rank, so with dropout the runs differ (docs/mpi.md).
set(tiny --data_dir=data --n_layer=2 --n_head=2 --n_embd=16 --block_size=16 --batch_size=4
    --gradient_accumulation_steps=2 --dropout=0 --bias=true --learning_rate=1e-2 --warmup_iters=5
    --lr_decay_iters=24 --min_lr=1e-3 --eval_interval=5 --eval_iters=2 --log_interval=1
    --max_iters=10 --threads=1 --always_save_checkpoint=true)
set(mpirun "${MPIEXEC}" --allow-run-as-root --oversubscribe -np 2)

run("${TRAIN}" ${tiny} --out_dir=one)
# Every combination of zero_stage and overlap_comm on 2 ranks follows the one process.
set(combinations 0_false 0_true 1_false 1_true)
foreach(combination IN LISTS combinations)
    string(REPLACE "_" ";" pair "${combination}")
    list(GET pair 0 zero)
    list(GET pair 1 overlap)
    # bucket_mb = 0: a bucket per layer, so the reductions really start during the backward and
    # the ZeRO-1 shard boundary falls inside a bucket.
    run(${mpirun} "${TRAIN_MPI}" ${tiny} --zero_stage=${zero} --overlap_comm=${overlap}
        --bucket_mb=0 --out_dir=two_${combination})
    string(FIND "${output}" "data-parallel: 2 MPI ranks" at)
    if(at EQUAL -1)
        message(FATAL_ERROR "train_mpi did not run on 2 ranks:\n${output}")
    endif()
    if(zero EQUAL 1)
        string(FIND "${output}" "(this rank's shard: 1/2 of" at)
        if(at EQUAL -1)
            message(FATAL_ERROR "zero_stage = 1: no sharded AdamW state in the memory line:\n${output}")
        endif()
    endif()
endforeach()
# Checkpoints resume on another number of ranks: a 2-rank ZeRO-1 run stopped after 4 steps goes on
# in one process, and a one-process run stopped after 4 steps goes on as 2-rank ZeRO-1 with
# overlap; both must end where the uninterrupted one-process run ended.
run(${mpirun} "${TRAIN_MPI}" ${tiny} --zero_stage=1 --out_dir=two_to_one --stop_after=4)
run("${TRAIN}" ${tiny} --out_dir=two_to_one --init_from=resume)
run("${TRAIN}" ${tiny} --out_dir=one_to_two --stop_after=4)
run(${mpirun} "${TRAIN_MPI}" ${tiny} --zero_stage=1 --overlap_comm=true --bucket_mb=0
    --out_dir=one_to_two --init_from=resume)
string(FIND "${output}" "resuming from" at)
if(at EQUAL -1)
    message(FATAL_ERROR "train_mpi did not resume:\n${output}")
endif()
# An odd batch cannot be split evenly: a clear error on every rank, no hang.
execute_process(COMMAND ${mpirun} "${TRAIN_MPI}" ${tiny} --batch_size=3 --out_dir=odd
    WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
    TIMEOUT 60)
string(FIND "${out}${err}" "key 'batch_size': 3 is not a multiple of the 2 MPI ranks" at)
if(rc EQUAL 0 OR at EQUAL -1)
    message(FATAL_ERROR "batch_size=3 on 2 ranks: expected the error, got (${rc}):\n${out}${err}")
endif()
# A NaN on the ranks (learning_rate = inf) stops both ranks with the error, no hang.
execute_process(COMMAND ${mpirun} "${TRAIN_MPI}" ${tiny} --learning_rate=1e300 --warmup_iters=0
    --out_dir=nan WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
    ERROR_VARIABLE err TIMEOUT 60)
string(FIND "${out}${err}" "stops at step" at)
if(rc EQUAL 0 OR at EQUAL -1)
    message(FATAL_ERROR "a diverging run on 2 ranks: expected the error, got (${rc}):\n${out}${err}")
endif()

file(WRITE "${WORK_DIR}/compare.py" [=[
import array, sys
def rows(path):  # kind,step,train_loss,val_loss,lr (the rest are timings)
    return [line.split(',')[:5] for line in open(path).read().splitlines()[1:]]
def losses_differ(one, two):  # the largest relative difference of two runs' logged values
    assert len(one) == len(two) == 13, (len(one), len(two))
    worst = 0.0
    for a, b in zip(one, two):
        assert a[:2] == b[:2], (a, b)
        for x, y in zip(a[2:], b[2:]):
            if x or y:
                worst = max(worst, abs(float(x) - float(y)) / abs(float(x)))
    return worst
# The checkpoints' floats: the file ends with u64 n | n weights | u8 1 | 4 f64 | i64 steps |
# n m | n v | u64 hash (include/nanogpt/checkpoint.hpp), so n is the u64 that fits.
def floats(path):
    data = open(path, 'rb').read()
    for n in range(1, len(data) // 12):
        start = len(data) - 8 - 12 * n - 41
        if start >= 8 and int.from_bytes(data[start - 8:start], 'little') == n:
            w = array.array('f', data[start:start + 4 * n])
            mv = array.array('f', data[start + 4 * n + 41:start + 12 * n + 41])
            return list(w) + list(mv)
    sys.exit('no weights found in ' + path)
def floats_differ(a, b):
    wa, wb = floats(a), floats(b)
    assert len(wa) == len(wb), (len(wa), len(wb))
    return max(abs(x - y) for x, y in zip(wa, wb))
for run in sys.argv[1:]:
    worst = losses_differ(rows('one/log.csv'), rows(run + '/log.csv'))
    assert worst < 1e-5, '%s: log.csv losses differ by %g relative' % (run, worst)
    # Absolute: AdamW divides by sqrt(v), so near-zero moments differ relatively more.
    far = floats_differ('one/ckpt.bin', run + '/ckpt.bin')
    assert far < 1e-4, '%s: checkpoint floats differ by up to %g' % (run, far)
    print('%s vs one process: losses within %.2g relative, checkpoint floats within %.2g absolute'
          % (run, worst, far))
]=])
run("${PYTHON}" compare.py two_0_false two_0_true two_1_false two_1_true two_to_one one_to_two)
message(STATUS "${output}")
