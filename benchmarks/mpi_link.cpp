// mpi_link — what the link between two MPI ranks delivers: the bandwidth each way while both
// directions carry 64 MB at once (MPI_Sendrecv, as an allreduce does), and the round-trip time of
// an 8-byte message; medians of several repetitions. bench_mpi_netem.sh prints it beside the
// training table, so the table says what the emulated link really did.
//   mpirun -np 2 ./build/mpi_link [megabytes] [repetitions]
#include <mpi.h>

#include <algorithm>  // std::sort
#include <cstdio>     // std::printf
#include <cstdlib>    // std::atoi
#include <vector>     // std::vector

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) {
        if (rank == 0) std::fprintf(stderr, "mpi_link: needs exactly 2 ranks, got %d\n", size);
        MPI_Finalize();
        return 1;
    }
    const int megabytes = argc > 1 ? std::atoi(argv[1]) : 64;
    const int repetitions = argc > 2 ? std::atoi(argv[2]) : 5;
    const int count = megabytes * (1 << 20) / static_cast<int>(sizeof(float));
    std::vector<float> out(static_cast<std::size_t>(count), 1.0f), in(out.size());
    const int peer = 1 - rank;
    std::vector<double> bandwidth, round_trip;
    for (int k = 0; k < repetitions + 1; ++k) {  // the first one warms up the connection
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        MPI_Sendrecv(out.data(), count, MPI_FLOAT, peer, 0, in.data(), count, MPI_FLOAT, peer, 0,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        const double seconds = MPI_Wtime() - t0;
        double ping = 0;
        const double t1 = MPI_Wtime();
        for (int i = 0; i < 10; ++i) {
            if (rank == 0) {
                MPI_Send(&ping, 1, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD);
                MPI_Recv(&ping, 1, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(&ping, 1, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(&ping, 1, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD);
            }
        }
        if (k == 0) continue;
        bandwidth.push_back(8.0 * count * sizeof(float) / seconds / 1e9);
        round_trip.push_back((MPI_Wtime() - t1) / 10 * 1e3);
    }
    if (rank == 0) {
        std::printf("link: %.2f Gbit/s each way (both directions at once, %d MB), round trip %.3f ms"
                    " (medians of %d)\n",
                    median(bandwidth), megabytes, median(round_trip), repetitions);
    }
    MPI_Finalize();
    return 0;
}
