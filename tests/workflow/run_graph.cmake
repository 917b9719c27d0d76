# run_graph.cmake — runs the graph example in both attention modes and checks what it prints
# (the listing of the tape) and the DOT file it writes: the header, one box per listed op, edges,
# the closing brace; when Graphviz's dot is given (-DDOT=...), that it renders the file as SVG.
#
#   cmake -DGRAPH=build/graph -DWORK_DIR=... [-DDOT=/usr/bin/dot] -P run_graph.cmake

cmake_minimum_required(VERSION 3.21)

function(fail)
    string(JOIN "" message ${ARGV})
    message(FATAL_ERROR "${message}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

foreach(fused true false)
    set(dot_file "${WORK_DIR}/graph-${fused}.dot")
    execute_process(COMMAND "${GRAPH}" --fused_attention=${fused} --dot "${dot_file}"
        OUTPUT_VARIABLE listing ERROR_VARIABLE errors RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        fail("graph --fused_attention=${fused} failed (${rc}):\n${errors}")
    endif()
    if(fused)
        set(attention_op "causal_self_attention")
    else()
        set(attention_op "softmax")
    endif()
    foreach(expected "2 layers x 4 heads x 16 dims" "embedding" "layernorm" "${attention_op}"
            "cross_entropy" "h.1.mlp.c_fc.weight [256, 64]" "ops, " "loss = ")
        string(FIND "${listing}" "${expected}" at)
        if(at EQUAL -1)
            fail("graph --fused_attention=${fused}: the listing lacks '${expected}':\n${listing}")
        endif()
    endforeach()
    # "N ops, M leaves": the DOT file must hold N boxes.
    string(REGEX MATCH "\n([0-9]+) ops, ([0-9]+) leaves" counts "${listing}")
    set(ops ${CMAKE_MATCH_1})
    set(leaves ${CMAKE_MATCH_2})

    file(READ "${dot_file}" dot)
    string(FIND "${dot}" "digraph tape {\n" header)
    if(NOT header EQUAL 0)
        fail("${dot_file} does not start with 'digraph tape {'")
    endif()
    string(LENGTH "${dot}" length)
    math(EXPR last "${length} - 2")
    string(SUBSTRING "${dot}" ${last} 2 tail)
    if(NOT tail STREQUAL "}\n")
        fail("${dot_file} does not end with '}'")
    endif()
    # Brackets and semicolons would confuse CMake's lists of matches: count on a copy without.
    string(REPLACE "[" "(" flat "${dot}")
    string(REPLACE "]" ")" flat "${flat}")
    string(REPLACE ";" "," flat "${flat}")
    string(REGEX MATCHALL "\n  n[0-9]+ \\(shape=box" boxes "${flat}")
    string(REGEX MATCHALL "\n  leaf[0-9]+ \\(shape=ellipse" ellipses "${flat}")
    string(REGEX MATCHALL "\n  [a-z]+[0-9]+ -> n[0-9]+," edges "${flat}")
    list(LENGTH boxes n_boxes)
    list(LENGTH ellipses n_ellipses)
    list(LENGTH edges n_edges)
    if(NOT n_boxes EQUAL ops OR NOT n_ellipses EQUAL leaves OR n_edges LESS ops)
        fail("${dot_file}: ${n_boxes} boxes, ${n_ellipses} leaves, ${n_edges} edges for "
             "${ops} ops and ${leaves} leaves in the listing")
    endif()

    if(DOT)
        execute_process(COMMAND "${DOT}" -Tsvg "${dot_file}" -o "${WORK_DIR}/graph-${fused}.svg"
            RESULT_VARIABLE rc ERROR_VARIABLE errors)
        if(NOT rc EQUAL 0)
            fail("dot -Tsvg rejected ${dot_file}:\n${errors}")
        endif()
        file(READ "${WORK_DIR}/graph-${fused}.svg" svg)
        string(FIND "${svg}" "<svg" svg_at)
        if(svg_at EQUAL -1)
            fail("dot -Tsvg ${dot_file} wrote no SVG")
        endif()
    else()
        message(STATUS "Graphviz's dot not found: ${dot_file} checked for structure only")
    endif()
endforeach()
