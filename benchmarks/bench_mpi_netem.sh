#!/usr/bin/env bash
# Data-parallel training over an emulated network link, on one machine: two network namespaces
# joined by a veth pair whose bandwidth is limited with tc, one MPI rank in each, Open MPI forced
# onto its TCP transport (--mca btl self,tcp) on that link only. For each bandwidth it measures,
# 1 OpenMP thread per rank and the same global batch everywhere:
#   1 rank (train), 2 ranks allreduce, 2 ranks overlap_comm, 2 ranks zero_stage = 1 (+ overlap)
# and prints tokens/s, time per step, communication time per step and the part of it exposed
# (not hidden behind the backward), as medians over the steps after the first (warm-up).
#
# Needs root (ip netns, tc), iproute2, Open MPI, a build with -DNANOGPT_WITH_MPI=ON (prepare,
# train, train_mpi, mpi_link) and the data in ../shared/data. Sets up and removes its namespaces itself;
# nothing leaves the veth pair and the namespaces' loopbacks.
#
#   sudo benchmarks/bench_mpi_netem.sh [build-dir] [models] [bandwidths] [steps] [gpt2-steps]
#   e.g. benchmarks/bench_mpi_netem.sh build-mpi "shakespeare_char gpt2" "10gbit 1gbit" 8 4
#
# The delay: this uses tc's tbf (token bucket) for the bandwidth. tc netem would add the 0.5 ms
# delay too, but kernels built without CONFIG_NET_SCH_NETEM (as this machine's) lack it; the
# script then runs without added delay and says so (docs/mpi.md estimates what 0.5 ms adds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
build=$(cd "${1:-build-mpi}" && pwd)
models=${2:-"shakespeare_char gpt2"}
bandwidths=${3:-"10gbit 1gbit"}
steps=${4:-8}
gpt2_steps=${5:-4}  # GPT-2 124M at block 512: about 9 s per step and rank on one core
data_dir=${NANOGPT_DATA:-${root}/../shared/data}
delay=${DELAY:-0.5ms}

ns_a=nanogpt_bench_a$$ ns_b=nanogpt_bench_b$$
ip_a=10.199.77.1 ip_b=10.199.77.2
veth_a=ngb$$a veth_b=ngb$$b
work=$(mktemp -d)
cleanup() {
    ip netns del "${ns_a}" 2> /dev/null || true
    ip netns del "${ns_b}" 2> /dev/null || true  # deleting a namespace deletes its veth end
    [[ -n ${KEEP_LOGS:-} ]] || rm -rf "${work}"
}
trap cleanup EXIT

ip netns add "${ns_a}"
ip netns add "${ns_b}"
ip link add "${veth_a}" type veth peer name "${veth_b}"
ip link set "${veth_a}" netns "${ns_a}"
ip link set "${veth_b}" netns "${ns_b}"
ip -n "${ns_a}" addr add "${ip_a}/24" dev "${veth_a}"
ip -n "${ns_b}" addr add "${ip_b}/24" dev "${veth_b}"
for ns in "${ns_a}" "${ns_b}"; do ip -n "${ns}" link set lo up; done
ip -n "${ns_a}" link set "${veth_a}" up
ip -n "${ns_b}" link set "${veth_b}" up

netem=no
if ip netns exec "${ns_a}" tc qdisc add dev "${veth_a}" root netem delay "${delay}" 2> /dev/null
then
    netem=yes
    ip netns exec "${ns_a}" tc qdisc del dev "${veth_a}" root
fi

# Each direction of the link: its sender's egress queue. With netem: delay and rate in one
# qdisc; without: a token bucket whose burst holds a few 64 kB (GSO) packets.
shape() {  # $1: rate such as 1gbit
    local burst=512kb
    [[ $1 == 10gbit ]] && burst=2mb
    for end in "${ns_a} ${veth_a}" "${ns_b} ${veth_b}"; do
        set -- "$1" ${end}
        if [[ ${netem} == yes ]]; then
            ip netns exec "$2" tc qdisc replace dev "$3" root netem delay "${delay}" rate "$1" \
                limit 100000
        else
            ip netns exec "$2" tc qdisc replace dev "$3" root tbf rate "$1" burst "${burst}" \
                latency 100ms
        fi
    done
}

# Rank 0 runs where mpirun runs (namespace a); Open MPI starts the daemon for the other host
# through this "rsh agent", inside namespace b, under its own host name (same-named hosts would
# look like one node to Open MPI).
cat > "${work}/agent.sh" << EOF
#!/bin/sh
shift  # the host: always ${ip_b}
exec ip netns exec ${ns_b} unshare --uts sh -c "hostname nanogpt-bench-b; \$*"
EOF
chmod +x "${work}/agent.sh"
printf '%s slots=1\n%s slots=1\n' "${ip_a}" "${ip_b}" > "${work}/hosts"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# --bind-to none: Open MPI takes the two namespaces for two nodes and binds each rank to the first
# core of "its" node, which on this one machine is the same core for both (seen: affinity mask 1
# for both ranks, each at 50% of one core).
mpirun_two=(ip netns exec "${ns_a}" mpirun --hostfile "${work}/hosts" -np 2 --bind-to none
    --mca plm_rsh_agent "${work}/agent.sh" --mca btl self,tcp
    --mca btl_tcp_if_include "${ip_a%.*}.0/24" --mca oob_tcp_if_include "${ip_a%.*}.0/24"
    -x OMP_NUM_THREADS=1 -x NANOGPT_PROGRESS=plain)

# Median over the logged steps after the first (warm-up) of the number sed extracts from each.
median_of() {  # $1: log file, $2: sed expression
    sed -n "$2" "$1" | tail -n +2 | sort -g |
        awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else print v[int((NR+1)/2)]}'
}

prepare_data() {  # $1: model
    if [[ $1 == gpt2 ]]; then
        [[ -d ${work}/data_gpt2 ]] || "${build}/prepare" --input="${data_dir}/tinyshakespeare.txt" \
            --tokenizer=gpt2 --encoder="${data_dir}/encoder.json" --merges="${data_dir}/vocab.bpe" \
            --out_dir="${work}/data_gpt2" > /dev/null
    else
        [[ -d ${work}/data_char ]] || "${build}/prepare" \
            --input="${data_dir}/tinyshakespeare.txt" --out_dir="${work}/data_char" > /dev/null
    fi
}

model_args() {  # $1: model; global batch 4, no evaluation to speak of, 1 thread
    local common=(--max_iters="$([[ $1 == gpt2 ]] && echo "${gpt2_steps}" || echo "${steps}")"
        --eval_interval=1000000 --eval_iters=1 --log_interval=1
        --batch_size=4 --gradient_accumulation_steps=1 --dropout=0 --threads=1
        --always_save_checkpoint=false --warmup_iters=0)
    if [[ $1 == gpt2 ]]; then
        echo --data_dir="${work}/data_gpt2" --n_layer=12 --n_head=12 --n_embd=768 \
            --block_size=512 --bias=true "${common[@]}"
    else
        echo shakespeare_char --data_dir="${work}/data_char" "${common[@]}"
    fi
}

# One row of the table from one log: tokens/s (from the time per step), ms per step, comm ms,
# exposed ms, hidden fraction.
row() {  # $1: label, $2: log file, $3: tokens per step, $4: the 1-rank ms per step
    local ms comm exposed
    ms=$(median_of "$2" 's/.*, \([0-9.]*\) ms\/it.*/\1/p')
    comm=$(median_of "$2" 's/.*comm \([0-9.]*\) ms.*/\1/p')
    exposed=$(median_of "$2" 's/.*exposed \([0-9.]*\) ms.*/\1/p')
    awk -v l="$1" -v m="${ms}" -v c="${comm}" -v e="${exposed}" -v n="$3" -v b="${4:-${ms}}" \
        'BEGIN { hidden = (c != "nan" && c > 0) ? sprintf("%.0f%%", 100 * (1 - e / c)) : "-";
                 printf "| %s | %.0f | %.2fx | %.0f | %s | %s | %s |\n", l, n / (m / 1000),
                        b / m, m, c, e, hidden }'
}

echo "# nanogpt.hpp data-parallel over an emulated link, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores); 1 OpenMP thread per rank"
echo "# link: veth between two network namespaces, Open MPI btl self,tcp; delay ${delay}:" \
    "$([[ ${netem} == yes ]] && echo "tc netem" || echo "NOT emulated (no tc netem in this kernel; bandwidth by tc tbf)")"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for model in ${models}; do
    prepare_data "${model}"
    read -r -a args <<< "$(model_args "${model}")"
    OMP_NUM_THREADS=1 "${build}/train" "${args[@]}" --out_dir="${work}/one_${model}" \
        > "${work}/one_${model}.log"
    base=$(median_of "${work}/one_${model}.log" 's/.*, \([0-9.]*\) ms\/it.*/\1/p')
    tokens=$((4 * $([[ ${model} == gpt2 ]] && echo 512 || echo 256)))
    for bw in ${bandwidths}; do
        shape "${bw}"
        echo
        echo "${bw} link as measured by mpi_link: $("${mpirun_two[@]}" "${build}/mpi_link" 64 3)"
        n=$([[ ${model} == gpt2 ]] && echo "${gpt2_steps}" || echo "${steps}")
        echo "## ${model}, ${bw}, global batch 4, ${n} steps (medians of steps 2..${n})"
        echo "| run | tokens/s | vs 1 rank | ms/step | comm ms/step | exposed ms/step | hidden |"
        echo "|---|---|---|---|---|---|---|"
        row "1 rank" "${work}/one_${model}.log" "${tokens}"
        for mode in "allreduce:--zero_stage=0 --overlap_comm=false" \
            "allreduce + overlap:--zero_stage=0 --overlap_comm=true" \
            "ZeRO-1:--zero_stage=1 --overlap_comm=false" \
            "ZeRO-1 + overlap:--zero_stage=1 --overlap_comm=true"; do
            label=${mode%%:*}
            read -r -a extra <<< "${mode#*:}"
            log="${work}/${model}_${bw}_${label// /_}.log"
            "${mpirun_two[@]}" "${build}/train_mpi" "${args[@]}" "${extra[@]}" \
                --out_dir="${work}/two_${model}" > "${log}" 2>&1 ||
                { echo "failed: ${label}"; tail -5 "${log}"; exit 1; }
            row "2 ranks ${label}" "${log}" "${tokens}" "${base}"
        done
    done
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
