// train_ranks.hpp — the processes training together: one process (train) or an MPI world
// (train_mpi), behind one Communicator interface, and the rows of each batch a rank takes.
// Not part of the library; used by examples/train.cpp.
#pragma once

#include <algorithm>  // std::copy
#include <cstdint>    // std::int64_t, std::int32_t

#include <nanogpt/data.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/tensor.hpp>
#ifdef NANOGPT_USE_MPI
#include <nanogpt/distributed.hpp>
#endif

namespace examples {

// ---- the processes training together ----
// One process (train) or an MPI world (train_mpi). Every rank draws the same global batch from
// the shared seed and keeps rows [rank*B/N, (rank+1)*B/N); its loss is the mean over its rows,
// so the mean of the ranks' gradients is the gradient of the global batch's mean loss. Only rank
// 0 writes files and prints. Every call below is collective: all ranks make it, in the same order.

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const { return 0; }
    virtual int world_size() const { return 1; }
    virtual void average_gradients(nanogpt::Parameters<float>&) {}
    virtual double average(double value) { return value; }
    /// True on every rank when any rank passes true (failures, stop requests).
    virtual bool any(bool local) { return local; }
    /// Ends every rank after an error the others cannot learn of; one process just returns.
    virtual void abort_others() {}
};

#ifdef NANOGPT_USE_MPI
class MpiCommunicator final : public Communicator {
public:
    MpiCommunicator(int& argc, char**& argv) : session_(argc, argv) {}
    int rank() const override { return session_.rank(); }
    int world_size() const override { return session_.world_size(); }
    void average_gradients(nanogpt::Parameters<float>& params) override {
        nanogpt::allreduce_mean_gradients(params);
    }
    double average(double value) override { return nanogpt::allreduce_mean(value); }
    bool any(bool local) override { return nanogpt::any_rank_failed(local); }
    void abort_others() override {
        if (session_.world_size() > 1) session_.abort(1);
    }

private:
    nanogpt::MpiSession session_;
};
#endif

/// This rank's rows of a global batch: [rank*B/N, (rank+1)*B/N).
inline nanogpt::Batch rank_rows(const nanogpt::Batch& global, const Communicator& comm) {
    if (comm.world_size() == 1) return global;
    const std::int64_t B = global.x.shape()[0], T = global.x.shape()[1];
    const std::int64_t rows = B / comm.world_size(), first = comm.rank() * rows;
    nanogpt::Batch mine{nanogpt::Tensor<std::int32_t>(nanogpt::Shape{rows, T}),   // (B/N, T)
                        nanogpt::Tensor<std::int32_t>(nanogpt::Shape{rows, T})};  // (B/N, T)
    std::copy(global.x.data() + first * T, global.x.data() + (first + rows) * T, mine.x.data());
    std::copy(global.y.data() + first * T, global.y.data() + (first + rows) * T, mine.y.data());
    return mine;
}

}  // namespace examples
