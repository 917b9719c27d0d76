// train_ranks.hpp — the processes training together: one process (train) or an MPI world
// (train_mpi), behind one Communicator interface, and the rows of each batch a rank takes.
// Not part of the library; used by examples/train.cpp.
#pragma once

#include <algorithm>  // std::copy
#include <cstdint>    // std::int64_t, std::int32_t
#include <functional> // std::function
#include <memory>     // std::unique_ptr, std::make_unique
#include <utility>    // std::pair
#include <vector>     // std::vector

#include <nanogpt/checkpoint.hpp>
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

/// Writes a checkpoint given the reader of the optimizer's moments (Communicator::save_moments).
using MomentWriter = std::function<void(const nanogpt::MomentReader<float>&)>;

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
    /// Calls write(moments) (rank 0 writes, the others skip it), where `moments` gives AdamW's
    /// m and v in save_checkpoint's order (nanogpt::MomentReader), each piece from the rank whose
    /// shard holds it; meanwhile the other ranks send theirs.
    virtual void save_moments(const nanogpt::AdamW<float>& optimizer, const MomentWriter& write) {
        write([&](int which, std::int64_t begin, std::int64_t count, float* out) {
            const std::vector<float>& from = which == 0 ? optimizer.m() : optimizer.v();
            std::copy(from.begin() + begin, from.begin() + begin + count, out);
        });
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
    // ZeRO-1: rank 0 receives each piece of m and v from the ranks whose shards hold it, in
    // save_checkpoint's order, while it writes; whatever the writer did not ask for (it failed)
    // is still received, so no rank waits forever in a send.
    void save_moments(const nanogpt::AdamW<float>& optimizer, const MomentWriter& write) override {
        if (sync_->options().zero_stage == 0 || world_size() == 1)
            return Communicator::save_moments(optimizer, write);
        const std::vector<nanogpt::ShardRange>& shards = sync_->shards();
        const std::int64_t n = shards.back().end, piece = nanogpt::kCheckpointPiece;
        const nanogpt::ShardRange own = sync_->shard();
        auto part = [](const nanogpt::ShardRange& s, std::int64_t begin, std::int64_t count) {
            return nanogpt::ShardRange{std::max(begin, s.begin), std::min(begin + count, s.end)};
        };
        if (rank() != 0) {
            for (int which = 0; which < 2; ++which) {
                const std::vector<float>& from = which == 0 ? optimizer.m() : optimizer.v();
                for (std::int64_t begin = 0; begin < n; begin += piece) {
                    const nanogpt::ShardRange p = part(own, begin, std::min(piece, n - begin));
                    if (p.size() <= 0) continue;
                    nanogpt::check_mpi(
                        MPI_Send(from.data() + (p.begin - own.begin), static_cast<int>(p.size()),
                                 MPI_FLOAT, 0, which, MPI_COMM_WORLD),
                        "save_moments: MPI_Send");
                }
            }
            return;
        }
        int next_which = 0;
        std::int64_t next_begin = 0;  // the first piece not yet received
        auto receive = [&](int which, std::int64_t begin, std::int64_t count, float* out) {
            if (which != next_which || begin != next_begin)
                throw std::logic_error("save_moments: pieces asked for out of order");
            const std::vector<float>& mine = which == 0 ? optimizer.m() : optimizer.v();
            for (std::size_t r = 0; r < shards.size(); ++r) {
                const nanogpt::ShardRange p = part(shards[r], begin, count);
                if (p.size() <= 0) continue;
                if (r == 0) {
                    std::copy(mine.begin() + p.begin, mine.begin() + p.end, out + (p.begin - begin));
                } else {
                    nanogpt::check_mpi(
                        MPI_Recv(out + (p.begin - begin), static_cast<int>(p.size()), MPI_FLOAT,
                                 static_cast<int>(r), which, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                        "save_moments: MPI_Recv");
                }
            }
            next_begin = begin + count;
            if (next_begin >= n) next_which = which + 1, next_begin = 0;
        };
        write(receive);
        std::vector<float> scratch(static_cast<std::size_t>(std::min(piece, n)));
        while (next_which < 2)
            receive(next_which, next_begin, std::min(piece, n - next_begin), scratch.data());
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
