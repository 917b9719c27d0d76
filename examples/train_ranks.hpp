// train_ranks.hpp — the processes training together: one process (train) or an MPI world
// (train_mpi), behind one Communicator interface, and the rows of each batch a rank takes.
// Not part of the library; used by examples/train.cpp.
#pragma once

#include <algorithm>  // std::copy
#include <cstdint>    // std::int64_t, std::int32_t
#include <memory>     // std::unique_ptr, std::make_unique
#include <utility>    // std::pair
#include <vector>     // std::vector

#include <nanogpt/data.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/optim.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/tensor.hpp>
#ifdef NANOGPT_USE_MPI
#include <nanogpt/distributed.hpp>
#endif

#include "train_settings.hpp"

namespace examples {

// ---- the processes training together ----
// One process (train) or an MPI world (train_mpi). Every rank draws the same global batch from
// the shared seed and keeps rows [rank*B/N, (rank+1)*B/N); its loss is the mean over its rows,
// so the mean of the ranks' gradients is the gradient of the global batch's mean loss. Only rank
// 0 writes files and prints. Every call below is collective: all ranks make it, in the same order.

/// Milliseconds one step spent communicating, and how many of them the training thread waited.
struct CommMs {
    double busy = 0, exposed = 0;
};

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const { return 0; }
    virtual int world_size() const { return 1; }
    /// Prepares the gradient reduction for `model`; returns the range of the parameter buffer
    /// this rank's optimizer updates (all of it, unless zero_stage = 1 on several ranks).
    virtual std::pair<std::int64_t, std::int64_t> attach(nanogpt::GPT<float>& model,
                                                         const Settings&) {
        return {0, model.parameters().size()};
    }
    /// Before the last micro-step's backward (overlap_comm starts reducing during it).
    virtual void arm() {}
    /// After the backward: the gradients summed over the ranks (this rank's shard at least).
    virtual void reduce_gradients() {}
    /// L2 norm of the mean gradient over the ranks.
    virtual double grad_norm(const nanogpt::Parameters<float>& params) {
        return nanogpt::grad_norm(params);
    }
    /// Turns the summed gradient into the mean (folded into AdamW's grad_scale).
    virtual double gradient_scale() const { return 1.0; }
    /// ZeRO-1: every rank's updated shard to every rank.
    virtual void gather_parameters() {}
    virtual CommMs take_timing() { return {}; }
    /// Concatenates every rank's `local` shard (shard sizes in rank order) into `all` on rank 0.
    virtual void gather_to_leader(const std::vector<float>& local, std::vector<float>& all) {
        all = local;
    }
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
    std::pair<std::int64_t, std::int64_t> attach(nanogpt::GPT<float>& model,
                                                 const Settings& s) override {
        nanogpt::GradientSyncOptions options;
        options.zero_stage = s.zero_stage;
        options.overlap = s.overlap_comm;
        options.bucket_bytes = static_cast<std::int64_t>(s.bucket_mb * 1e6);
        sync_ = std::make_unique<nanogpt::GradientSync<float>>(model, options);
        return {sync_->shard().begin, sync_->shard().end};
    }
    void arm() override { sync_->arm(); }
    void reduce_gradients() override { sync_->reduce(); }
    double grad_norm(const nanogpt::Parameters<float>&) override { return sync_->grad_norm(); }
    double gradient_scale() const override { return sync_->gradient_scale(); }
    void gather_parameters() override { sync_->gather_parameters(); }
    CommMs take_timing() override {
        const nanogpt::CommTiming t = sync_->take_timing();
        return {t.busy_ms, t.exposed_ms};
    }
    void gather_to_leader(const std::vector<float>& local, std::vector<float>& all) override {
        std::vector<int> counts(static_cast<std::size_t>(world_size())), displs(counts.size());
        const int count = static_cast<int>(local.size());
        nanogpt::detail::check_mpi(
            MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD),
            "MPI_Gather");
        std::int64_t total = 0;
        for (std::size_t r = 0; r < counts.size(); ++r) {
            displs[r] = static_cast<int>(total);
            total += counts[r];
        }
        if (rank() == 0) all.resize(static_cast<std::size_t>(total));
        nanogpt::detail::check_mpi(
            MPI_Gatherv(local.data(), count, MPI_FLOAT, all.data(), counts.data(), displs.data(),
                        MPI_FLOAT, 0, MPI_COMM_WORLD),
            "MPI_Gatherv");
    }
    double average(double value) override { return nanogpt::allreduce_mean(value); }
    bool any(bool local) override { return nanogpt::any_rank_failed(local); }
    void abort_others() override {
        if (session_.world_size() > 1) session_.abort(1);
    }

private:
    nanogpt::MpiSession session_;
    std::unique_ptr<nanogpt::GradientSync<float>> sync_;  // after session_: destroyed before it
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
