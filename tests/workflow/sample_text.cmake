# sample_text.cmake — the small training text the workflow scripts share (included by
# run_workflow.cmake and run_mpi.cmake): four lines of Hamlet, 40 times, as DIR/input.txt.

function(write_sample_text dir)
    set(verse "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind to suffer\n")
    string(APPEND verse "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles.\n")
    string(REPEAT "${verse}" 40 text)
    file(WRITE "${dir}/input.txt" "${text}")
endfunction()
