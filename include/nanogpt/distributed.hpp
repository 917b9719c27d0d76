// distributed.hpp — data-parallel training over MPI: every process (rank) holds the whole model,
// computes the gradient of its share of the batch, and one allreduce averages the gradients so
// every rank takes the same optimizer step and the weights stay identical.
//
// OPTIONAL: this header includes <mpi.h>, so the umbrella nanogpt.hpp does not include it and the
// library stays dependency-free. Builds on parameters.hpp (all gradients in one contiguous buffer,
// so the average is a single collective). See examples/train.cpp (built as train_mpi with
// -DNANOGPT_WITH_MPI=ON) for a trainer that uses it; docs/mpi.md.
#pragma once

#include <mpi.h>

#include <algorithm>    // std::min
#include <climits>      // INT_MAX
#include <cstdint>      // std::int64_t
#include <stdexcept>    // std::runtime_error, std::logic_error
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::is_same_v

#include "parameters.hpp"

namespace nanogpt {

namespace detail {

inline void check_mpi(int rc, const char* call) {
    if (rc != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING];
        int length = 0;
        MPI_Error_string(rc, text, &length);
        throw std::runtime_error(std::string(call) + " failed: " + std::string(text, length));
    }
}

template <class T>
MPI_Datatype mpi_type() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "mpi_type: only float and double gradients");
    return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

}  // namespace detail

/// MPI_Init in the constructor, MPI_Finalize in the destructor: one per program, in main().
class MpiSession {
public:
    MpiSession(int& argc, char**& argv) {
        detail::check_mpi(MPI_Init(&argc, &argv), "MPI_Init");
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
    }
    ~MpiSession() { MPI_Finalize(); }
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;

    /// This process's index in [0, world_size()).
    int rank() const { return rank_; }
    /// The number of processes training together (mpirun -np N).
    int world_size() const { return world_size_; }
    /// Ends every rank at once: the last resort when one rank fails where the others cannot learn
    /// of it (they would wait in a collective forever).
    [[noreturn]] void abort(int code) const {
        MPI_Abort(MPI_COMM_WORLD, code);
        throw std::logic_error("MPI_Abort returned");  // MPI_Abort does not return
    }

private:
    int rank_ = 0, world_size_ = 1;
};

/// Replaces every rank's gradient by the mean over the ranks: one MPI_Allreduce (sum, in place)
/// over the contiguous gradient buffer (split only past INT_MAX elements, MPI's count type), then
/// a scale by 1/world_size. Every rank must call it, with the same model.
template <class T>
void allreduce_mean_gradients(Parameters<T>& params, MPI_Comm comm = MPI_COMM_WORLD) {
    int world_size = 1;
    MPI_Comm_size(comm, &world_size);
    if (world_size == 1) return;
    T* g = params.grad();
    const std::int64_t n = params.size();
    for (std::int64_t begin = 0; begin < n; begin += INT_MAX) {
        const int count = static_cast<int>(std::min<std::int64_t>(n - begin, INT_MAX));
        detail::check_mpi(
            MPI_Allreduce(MPI_IN_PLACE, g + begin, count, detail::mpi_type<T>(), MPI_SUM, comm),
            "allreduce_mean_gradients: MPI_Allreduce");
    }
    const T scale = T(1) / static_cast<T>(world_size);
    for (std::int64_t i = 0; i < n; ++i) g[i] *= scale;
}

/// The mean of one value over the ranks (an eval loss, a logged train loss).
inline double allreduce_mean(double value, MPI_Comm comm = MPI_COMM_WORLD) {
    int world_size = 1;
    MPI_Comm_size(comm, &world_size);
    double sum = value;
    detail::check_mpi(MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, comm),
                      "allreduce_mean: MPI_Allreduce");
    return sum / world_size;
}

/// True on every rank when any rank passes true: call it at the same point on every rank (a step
/// boundary), so a rank that hit NaN or an exception stops all of them instead of leaving the
/// others waiting in the next collective.
inline bool any_rank_failed(bool local_failed, MPI_Comm comm = MPI_COMM_WORLD) {
    int local = local_failed ? 1 : 0, any = 0;
    detail::check_mpi(MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_LOR, comm),
                      "any_rank_failed: MPI_Allreduce");
    return any != 0;
}

}  // namespace nanogpt
