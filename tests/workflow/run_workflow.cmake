# run_workflow.cmake — scripted runs of the workflow programs (prepare, train, sample) on a small
# generated text with a tiny model; one CTest test per MODE (see tests/CMakeLists.txt):
#
#   resume        an interrupted-then-resumed run ends bit-identical to an uninterrupted one
#   outputs       meta/bin sizes, config.txt loads again, log.csv rows, loss.svg is XML
#   errors        unknown keys, ill-typed values (with file:line), gpt2 misuse, NaN guard
#   sample        --out_dir / --checkpoint, long prompts cropped, unknown characters named
#
# The GPT-2 paths (prepare --tokenizer=gpt2, train init_from=gpt2, sample --weights) are compared
# with the library's results in tests/test_gpt2_programs.cpp; here only their errors.
#   config_table  docs/training.md's config table equals `train --print_config_table`
#
#   cmake -DMODE=resume -DPREPARE=... -DTRAIN=... -DSAMPLE=... -DWORK_DIR=... [-DPYTHON=...]
#         [-DTRAINING_DOC=...] -P run_workflow.cmake

cmake_minimum_required(VERSION 3.21)
include("${CMAKE_CURRENT_LIST_DIR}/sample_text.cmake")

function(fail)
    string(JOIN "" message ${ARGV})
    message(FATAL_ERROR "${message}")
endfunction()

# Runs a command; EXPECT is 0 (must succeed) or "fail" (must fail, output must contain CONTAINS).
function(run_program)
    cmake_parse_arguments(arg "" "EXPECT;CONTAINS;OUTPUT" "COMMAND" ${ARGN})
    execute_process(COMMAND ${arg_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
        WORKING_DIRECTORY "${WORK_DIR}")
    string(JOIN " " shown ${arg_COMMAND})
    if(arg_EXPECT STREQUAL "fail")
        if(rc EQUAL 0)
            fail("expected a failure: ${shown}\n${out}")
        endif()
    elseif(NOT rc EQUAL 0)
        fail("failed (${rc}): ${shown}\nstdout:\n${out}\nstderr:\n${err}")
    endif()
    if(DEFINED arg_CONTAINS)
        string(FIND "${out}${err}" "${arg_CONTAINS}" at)
        if(at EQUAL -1)
            fail("output of `${shown}` lacks \"${arg_CONTAINS}\":\n${out}${err}")
        endif()
    endif()
    if(DEFINED arg_OUTPUT)
        set(${arg_OUTPUT} "${out}" PARENT_SCOPE)
    endif()
endfunction()

function(prepare_data)
    file(REMOVE_RECURSE "${WORK_DIR}")
    file(MAKE_DIRECTORY "${WORK_DIR}")
    write_sample_text("${WORK_DIR}")
    run_program(COMMAND "${PREPARE}" --input=input.txt --out_dir=data)
endfunction()

# A model of 2 layers x 2 heads x 16 channels over 16 tokens: each run takes a second or two.
set(tiny --data_dir=data --n_layer=2 --n_head=2 --n_embd=16 --block_size=16 --batch_size=4
    --gradient_accumulation_steps=2 --dropout=0.1 --bias=true --learning_rate=1e-2 --warmup_iters=5
    --lr_decay_iters=24 --min_lr=1e-3 --eval_interval=8 --eval_iters=2 --log_interval=4
    --max_iters=24 --threads=2 --always_save_checkpoint=true)

if(MODE STREQUAL "resume")
    prepare_data()
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=full)
    # Stop after 11 steps (between evaluations) as Ctrl-C would, then resume to the end.
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=split --stop_after=11 CONTAINS "after step 11: saved")
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=split --init_from=resume CONTAINS "at step 11")
    # Then interrupt a resumed run too, at an evaluation step, and resume again.
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=twice --stop_after=8)
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=twice --init_from=resume --stop_after=9)
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=twice --init_from=resume)
    foreach(dir split twice)
        # Same weights, optimizer moments, step, best val loss and RNG states: the same bytes.
        execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files full/ckpt.bin ${dir}/ckpt.bin
            WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE different)
        if(different)
            fail("${dir}/ckpt.bin differs from full/ckpt.bin: resuming is not exact")
        endif()
        # And the same logged losses (columns kind..lr; the rest are timings).
        foreach(run full ${dir})
            file(STRINGS "${WORK_DIR}/${run}/log.csv" lines)
            set(losses_${run} "")
            foreach(line IN LISTS lines)
                string(REGEX MATCH "^[a-z_]+,[^,]*,[^,]*,[^,]*,[^,]*" kept "${line}")
                list(APPEND losses_${run} "${kept}")
            endforeach()
        endforeach()
        if(NOT losses_full STREQUAL losses_${dir})
            fail("log.csv of ${dir} differs from full:\n${losses_${dir}}\nvs\n${losses_full}")
        endif()
    endforeach()

elseif(MODE STREQUAL "outputs")
    prepare_data()
    file(SIZE "${WORK_DIR}/input.txt" chars)
    file(SIZE "${WORK_DIR}/data/train.bin" train_bytes)
    file(SIZE "${WORK_DIR}/data/val.bin" val_bytes)
    math(EXPR total "${train_bytes} + ${val_bytes}")
    math(EXPR expected "2 * ${chars}")
    if(NOT total EQUAL expected)
        fail("train.bin + val.bin hold ${total} bytes, expected 2 per character = ${expected}")
    endif()
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=out --max_iters=12)
    foreach(f ckpt.bin config.txt log.csv loss.svg)
        if(NOT EXISTS "${WORK_DIR}/out/${f}")
            fail("out/${f} was not written")
        endif()
    endforeach()
    file(STRINGS "${WORK_DIR}/out/log.csv" rows)
    set(train_rows ${rows})
    list(FILTER train_rows INCLUDE REGEX "^train,")
    list(LENGTH train_rows steps)
    if(NOT steps EQUAL 3)
        fail("log.csv has ${steps} train rows, expected 3 (steps 4, 8, 12)")
    endif()
    list(FILTER rows INCLUDE REGEX "^eval,")
    list(LENGTH rows evals)
    if(NOT evals EQUAL 3)
        fail("log.csv has ${evals} eval rows, expected 3 (steps 0, 8, 12)")
    endif()
    # config.txt is a config file: loading it reproduces the same configuration.
    run_program(COMMAND "${TRAIN}" out/config.txt --out_dir=again --eval_only=true)
    file(READ "${WORK_DIR}/out/config.txt" first)
    file(READ "${WORK_DIR}/again/config.txt" second)
    foreach(text first second)  # all but the two keys the second run overrides
        string(REGEX REPLACE "(out_dir|eval_only) = [^\n]*\n" "" ${text} "${${text}}")
    endforeach()
    if(NOT first STREQUAL second)
        fail("config.txt does not round-trip:\n${first}\nvs\n${second}")
    endif()
    if(PYTHON)
        run_program(COMMAND "${PYTHON}" -c
            "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); \
assert r.tag.endswith('svg'), r.tag; \
assert len([e for e in r.iter() if e.tag.endswith('polyline')]) >= 4"
            out/loss.svg)
    endif()

elseif(MODE STREQUAL "errors")
    prepare_data()
    run_program(COMMAND "${TRAIN}" ${tiny} --colour=red EXPECT fail CONTAINS "unknown config key 'colour'")
    run_program(COMMAND "${TRAIN}" ${tiny} --batch_size=many EXPECT fail
        CONTAINS "key 'batch_size': 'many' is not an integer")
    file(WRITE "${WORK_DIR}/bad.txt" "# a config file\nmax_iters = 10\ndropout = lots\n")
    run_program(COMMAND "${TRAIN}" bad.txt ${tiny} EXPECT fail CONTAINS "bad.txt:3: key 'dropout'")
    run_program(COMMAND "${TRAIN}" ${tiny} --init_from=gpt2 EXPECT fail
        CONTAINS "init_from = gpt2 needs data prepared with --tokenizer=gpt2, but data/meta.txt says tokenizer = char")
    run_program(COMMAND "${TRAIN}" ${tiny} --init_from=gpt3 EXPECT fail CONTAINS "is not scratch, resume or gpt2")
    run_program(COMMAND "${TRAIN}" ${tiny} --init_from=resume --out_dir=nothing EXPECT fail
        CONTAINS "cannot open file")
    run_program(COMMAND "${TRAIN}" ${tiny} --block_size=5000 EXPECT fail
        CONTAINS "needs at least block_size + 1 = 5001")
    run_program(COMMAND "${TRAIN}" ${tiny} --data_dir=missing EXPECT fail CONTAINS "run prepare first")
    run_program(COMMAND "${PREPARE}" --input=input.txt --out_dir=x --tokenizer=gpt2 --encoder=none.json
        --merges=none.bpe EXPECT fail CONTAINS "'none.json': cannot open file")
    run_program(COMMAND "${PREPARE}" --input=input.txt --out_dir=x --encoder=none.json EXPECT fail
        CONTAINS "--encoder and --merges are for --tokenizer=gpt2")
    run_program(COMMAND "${PREPARE}" --input=input.txt --out_dir=x --tokenizer=bytes EXPECT fail
        CONTAINS "unknown --tokenizer 'bytes'")
    # A learning rate this large overflows the weights: the run must stop, name the step, fail.
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=nan --learning_rate=1e30 --warmup_iters=0 --grad_clip=0
        EXPECT fail CONTAINS "diverged at step")
    # Sizes from flags and files are overflow-checked and bounded (issue 11, item 5): a clear
    # std::invalid_argument / std::runtime_error naming the field or file, never bad_alloc.
    run_program(COMMAND "${TRAIN}" ${tiny} --block_size=9223372036854775807 EXPECT fail
        CONTAINS "num_parameters (block_size x n_embd) = 9223372036854775807 x 16")
    run_program(COMMAND "${TRAIN}" ${tiny} --n_embd=4294967296 --n_head=1 EXPECT fail
        CONTAINS "num_parameters (n_embd^2) = 4294967296 x 4294967296")
    run_program(COMMAND "${TRAIN}" ${tiny} --batch_size=1000000000000 EXPECT fail
        CONTAINS "batch_size = 1000000000000: activation elements")
    file(MAKE_DIRECTORY "${WORK_DIR}/a_directory")
    run_program(COMMAND "${SAMPLE}" --checkpoint=a_directory EXPECT fail
        CONTAINS "checkpoint 'a_directory': not a regular file")
    file(COPY "${WORK_DIR}/data/" DESTINATION "${WORK_DIR}/huge_vocab")
    file(READ "${WORK_DIR}/huge_vocab/meta.txt" meta)
    string(REGEX REPLACE "vocab_size = [0-9]+" "vocab_size = 2000000000" meta "${meta}")
    file(WRITE "${WORK_DIR}/huge_vocab/meta.txt" "${meta}")
    run_program(COMMAND "${TRAIN}" ${tiny} --data_dir=huge_vocab EXPECT fail
        CONTAINS "vocab_size 2000000000 exceeds 65536")
    # The divergence rule (docs/formats.md): a checkpoint replaces the previous one only once the
    # step after it produced a finite loss and gradient norm. Resumed with that learning rate and
    # an evaluation (always_save_checkpoint) every step, the first update makes the weights huge
    # but finite, the next evaluation saves them, and only the step after it diverges: ckpt.bin
    # must still be the good checkpoint.
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=guard --max_iters=8)
    file(COPY_FILE "${WORK_DIR}/guard/ckpt.bin" "${WORK_DIR}/good.bin")
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=guard --init_from=resume --eval_interval=1
        --learning_rate=1e30 --warmup_iters=0 --grad_clip=0 EXPECT fail CONTAINS "diverged at step 9")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files guard/ckpt.bin good.bin
        WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE replaced)
    if(replaced)
        fail("guard/ckpt.bin was replaced by the checkpoint of a diverging run")
    endif()

elseif(MODE STREQUAL "sample")
    prepare_data()
    run_program(COMMAND "${TRAIN}" ${tiny} --out_dir=out --max_iters=8)
    run_program(COMMAND "${SAMPLE}" --out_dir=out --start=To --max_new_tokens=20 --num_samples=2 OUTPUT text)
    string(REGEX MATCHALL "---------------" separators "${text}")
    list(LENGTH separators count)
    if(NOT count EQUAL 2)
        fail("expected 2 samples, got:\n${text}")
    endif()
    run_program(COMMAND "${SAMPLE}" --checkpoint=out/ckpt.bin --max_new_tokens=5 --num_samples=1)
    # A prompt of 200 characters, longer than block_size = 16: generation sees the last 16.
    string(REPEAT "the sea " 25 long)
    file(WRITE "${WORK_DIR}/prompt.txt" "${long}")
    run_program(COMMAND "${SAMPLE}" --out_dir=out --start=FILE:prompt.txt --max_new_tokens=20 --num_samples=1
        OUTPUT from_long)
    run_program(COMMAND "${SAMPLE}" --out_dir=out "--start=the sea the sea " --max_new_tokens=20 --num_samples=1
        OUTPUT from_last_block)
    string(LENGTH "${long}" skip)
    string(SUBSTRING "${from_long}" ${skip} -1 generated_long)
    string(SUBSTRING "${from_last_block}" 16 -1 generated_last_block)
    if(NOT generated_long STREQUAL generated_last_block)
        fail("a long prompt should act as its last block_size tokens:\n${from_long}\nvs\n${from_last_block}")
    endif()
    run_program(COMMAND "${SAMPLE}" --out_dir=out --start=Zebra! EXPECT fail CONTAINS "unknown character 'Z'")
    run_program(COMMAND "${SAMPLE}" --out_dir=out --weights=gpt2.safetensors EXPECT fail
        CONTAINS "give one of --out_dir, --checkpoint and --weights")
    run_program(COMMAND "${SAMPLE}" --weights=none.safetensors EXPECT fail
        CONTAINS "safetensors 'none.safetensors': cannot open the file")

elseif(MODE STREQUAL "config_table")
    execute_process(COMMAND "${TRAIN}" --print_config_table OUTPUT_VARIABLE table RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        fail("train --print_config_table failed")
    endif()
    file(READ "${TRAINING_DOC}" doc)
    set(begin_marker "<!-- config-table:begin -->\n")
    string(FIND "${doc}" "${begin_marker}" begin)
    string(FIND "${doc}" "<!-- config-table:end -->" end)
    if(begin EQUAL -1 OR end EQUAL -1)
        fail("${TRAINING_DOC} lacks the config-table markers")
    endif()
    string(LENGTH "${begin_marker}" skip)
    math(EXPR begin "${begin} + ${skip}")
    math(EXPR length "${end} - ${begin}")
    string(SUBSTRING "${doc}" ${begin} ${length} documented)
    if(NOT documented STREQUAL table)
        fail("${TRAINING_DOC}'s config table differs from `train --print_config_table`; paste this between the "
             "config-table markers:\n${table}")
    endif()

else()
    fail("unknown MODE '${MODE}'")
endif()
