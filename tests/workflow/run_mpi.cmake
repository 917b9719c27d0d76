# run_mpi.cmake — data-parallel training is the single-process training: `train` with batch B
# against `mpirun -np 2 train_mpi` with the same global batch B and seed (1 thread per rank) on a
# small generated text. Summation order differs (two half-batch means averaged, an allreduce), so
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
run(${mpirun} "${TRAIN_MPI}" ${tiny} --out_dir=two)
string(FIND "${output}" "data-parallel: 2 MPI ranks" at)
if(at EQUAL -1)
    message(FATAL_ERROR "train_mpi did not run on 2 ranks:\n${output}")
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
one, two = rows('one/log.csv'), rows('two/log.csv')
assert len(one) == len(two) == 13, (len(one), len(two))
worst = 0.0
for a, b in zip(one, two):
    assert a[:2] == b[:2], (a, b)
    for x, y in zip(a[2:], b[2:]):
        if x or y:
            worst = max(worst, abs(float(x) - float(y)) / abs(float(x)))
assert worst < 1e-5, 'log.csv losses differ by %g relative' % worst
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
wa, wb = floats('one/ckpt.bin'), floats('two/ckpt.bin')
assert len(wa) == len(wb), (len(wa), len(wb))
# Absolute: AdamW divides by sqrt(v), so near-zero moments differ relatively more.
far = max(abs(x - y) for x, y in zip(wa, wb))
assert far < 1e-4, 'checkpoint floats differ by up to %g' % far
print('1 vs 2 ranks: losses within %.2g relative, checkpoint floats within %.2g absolute' % (worst, far))
]=])
run("${PYTHON}" compare.py)
message(STATUS "${output}")
