// distributed.hpp — data-parallel training over MPI: every process (rank) holds the whole model,
// computes the gradient of its share of the batch, and the ranks sum their gradients so every rank
// takes the same optimizer step and the weights stay identical.
//
// GradientSync does the summing the way large trainers do: gradients go in buckets (contiguous
// ranges of the one gradient buffer), optionally started while the backward still computes the
// lower layers (overlap: GPT::on_gradients_ready, a communication thread that keeps the
// non-blocking collectives moving), and optionally ZeRO-1: each rank receives only its shard's
// sum (reduce-scatter), AdamW keeps moments for that shard alone (AdamW's shard constructor), and
// the updated shards are all-gathered. docs/mpi.md explains the choices and the measurements.
//
// OPTIONAL: this header includes <mpi.h>, so the umbrella nanogpt.hpp does not include it and the
// library stays dependency-free. Builds on model.hpp and optim.hpp. See examples/train.cpp (built
// as train_mpi with -DNANOGPT_WITH_MPI=ON) for a trainer that uses it; docs/mpi.md.
#pragma once

#include <mpi.h>

#include <algorithm>           // std::min, std::max
#include <chrono>              // std::chrono::steady_clock, microseconds
#include <climits>             // INT_MAX
#include <cmath>               // std::sqrt
#include <condition_variable>  // std::condition_variable
#include <cstdint>             // std::int64_t
#include <cstring>             // std::memmove
#include <mutex>               // std::mutex, std::unique_lock
#include <stdexcept>           // std::runtime_error, std::logic_error, std::invalid_argument
#include <string>              // std::string, std::to_string
#include <thread>              // std::thread
#include <type_traits>         // std::is_same_v
#include <vector>              // std::vector

#include "model.hpp"
#include "optim.hpp"
#include "parameters.hpp"

namespace nanogpt {

/// Throws std::runtime_error naming `call` and MPI's message when rc is not MPI_SUCCESS (for
/// programs that make MPI calls of their own beside this header's).
inline void check_mpi(int rc, const char* call) {
    if (rc != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING];
        int length = 0;
        MPI_Error_string(rc, text, &length);
        throw std::runtime_error(std::string(call) + " failed: " + std::string(text, length));
    }
}

namespace detail {

template <class T>
MPI_Datatype mpi_type() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "mpi_type: only float and double gradients");
    return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

}  // namespace detail

/// MPI_Init_thread in the constructor, MPI_Finalize in the destructor: one per program, in
/// main(). It asks for MPI_THREAD_SERIALIZED: GradientSync's overlap makes its MPI calls from a
/// communication thread, never at the same time as the main thread's.
class MpiSession {
public:
    MpiSession(int& argc, char**& argv) {
        int provided = 0;
        check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided),
                          "MPI_Init_thread");
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
        check_mpi(
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
    check_mpi(MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, comm),
                      "allreduce_mean: MPI_Allreduce");
    return sum / world_size;
}

/// True on every rank when any rank passes true: call it at the same point on every rank (a step
/// boundary), so a rank that hit NaN or an exception stops all of them instead of leaving the
/// others waiting in the next collective.
inline bool any_rank_failed(bool local_failed, MPI_Comm comm = MPI_COMM_WORLD) {
    int local = local_failed ? 1 : 0, any = 0;
    check_mpi(MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_LOR, comm),
                      "any_rank_failed: MPI_Allreduce");
    return any != 0;
}

// ---- ZeRO-1 shards and the gradient reduction ----

/// A range [begin, end) of the parameter (and gradient) buffer.
struct ShardRange {
    std::int64_t begin = 0, end = 0;
    std::int64_t size() const { return end - begin; }
};

/// Rank `rank`'s shard of a buffer of n elements split into world_size nearly equal ranges.
inline ShardRange shard_range(std::int64_t n, int rank, int world_size) {
    return {n * rank / world_size, n * (rank + 1) / world_size};
}

struct GradientSyncOptions {
    /// 0: every rank receives the whole summed gradient and updates every parameter (allreduce).
    /// 1: ZeRO-1, each rank receives its shard's sum (reduce-scatter), updates its shard with
    /// the AdamW state of that shard only, and the shards are all-gathered.
    int zero_stage = 0;
    /// Start each bucket's reduction as soon as the backward has finished its layers.
    bool overlap = false;
    /// With overlap: the smallest bucket (adjacent layers join until they reach it), so that tiny
    /// layers do not each pay a collective's latency.
    std::int64_t bucket_bytes = std::int64_t{4} << 20;
    /// With overlap: how often the communication thread calls MPI_Testsome. Open MPI's TCP
    /// transport moves data only inside MPI calls, so this is what keeps the network busy.
    std::chrono::microseconds poll_interval{200};

    void validate() const {
        if (zero_stage != 0 && zero_stage != 1) {
            throw std::invalid_argument("zero_stage must be 0 or 1, got " +
                                        std::to_string(zero_stage));
        }
        if (bucket_bytes < 0)
            throw std::invalid_argument("bucket_bytes must be >= 0, got " +
                                        std::to_string(bucket_bytes));
    }
};

/// Time one step spent communicating: `busy` while any collective was in flight, `exposed` the
/// part the training thread waited for (the rest was hidden behind the backward).
struct CommTiming {
    double busy_ms = 0, exposed_ms = 0;
};

/// The gradient reduction of data-parallel training, for one model on one communicator. After
/// the backward of the last micro-step, reduce() leaves the SUM over the ranks of the gradients
/// (of the whole buffer, or of this rank's shard under ZeRO-1); gradient_scale() turns it into the
/// mean, folded into AdamW::step's grad_scale. Every call is collective: all ranks make it, in
/// the same order, with the same model shape.
template <class T>
class GradientSync {
public:
    GradientSync(GPT<T>& model, const GradientSyncOptions& options, MPI_Comm comm = MPI_COMM_WORLD)
        : model_(model), params_(model.parameters()), options_((options.validate(), options)),
          comm_(comm) {
        MPI_Comm_rank(comm, &rank_);
        MPI_Comm_size(comm, &world_size_);
        const std::int64_t n = params_.size();
        for (int r = 0; r < world_size_; ++r) shards_.push_back(shard_range(n, r, world_size_));
        if (options_.zero_stage == 0) shards_.assign(world_size_, ShardRange{0, n});
        if (options_.zero_stage == 1 && n > INT_MAX) {
            throw std::invalid_argument("zero_stage = 1: " + std::to_string(n) +
                                        " parameters exceed MPI's int counts (INT_MAX)");
        }
        make_buckets();
        if (!options_.overlap) return;
        int provided = 0;
        MPI_Query_thread(&provided);
        if (provided < MPI_THREAD_SERIALIZED) {
            throw std::runtime_error(
                "overlap_comm needs MPI_THREAD_SERIALIZED, this MPI provides less");
        }
        model_.on_gradients_ready([this](std::int64_t begin) { gradients_ready(begin); });
        thread_ = std::thread([this] { communicate(); });
    }

    ~GradientSync() {
        if (thread_.joinable()) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                stop_ = true;
            }
            wake_.notify_one();
            thread_.join();
        }
        if (options_.overlap) model_.on_gradients_ready({});
    }
    GradientSync(const GradientSync&) = delete;
    GradientSync& operator=(const GradientSync&) = delete;

    /// The elements this rank's optimizer updates (the whole buffer without ZeRO-1).
    ShardRange shard() const { return shards_[static_cast<std::size_t>(rank_)]; }
    /// Every rank's shard, in rank order.
    const std::vector<ShardRange>& shards() const { return shards_; }
    /// Multiplies the summed gradient into the mean over the ranks.
    double gradient_scale() const { return 1.0 / world_size_; }
    const GradientSyncOptions& options() const { return options_; }

    /// Before the backward of the last micro-step: with overlap, its buckets start as the layers
    /// finish (earlier micro-steps only accumulate).
    void arm() { armed_ = options_.overlap; }

    /// Sums the gradients over the ranks (whole buffer, or this rank's shard under ZeRO-1).
    /// Every rank calls it once per step, also one whose backward failed, so the collectives
    /// match; the caller then agrees with the others whether to take the step.
    void reduce() {
        const auto t0 = std::chrono::steady_clock::now();
        if (options_.overlap) {
            std::unique_lock<std::mutex> lock(mutex_);
            ready_begin_ = 0;  // whatever has not started yet (wte, wpe) starts now
            wake_.notify_one();
            done_.wait(lock, [&] { return completed_ == buckets_.size() || !error_.empty(); });
            if (!error_.empty()) throw std::runtime_error(error_);
            started_ = completed_ = 0;
            ready_begin_ = params_.size();
            armed_ = false;
        } else {
            for (std::size_t i = 0; i < buckets_.size(); ++i) {
                start(i, true);
                finish(i);
            }
        }
        const double ms = elapsed_ms(t0);
        add_timing(options_.overlap ? 0.0 : ms, ms);
    }

    /// L2 norm of the mean gradient over the ranks (collective under ZeRO-1: the shards' sums of
    /// squares are added). Call after reduce().
    double grad_norm() {
        const ShardRange own = shard();
        double sum = sum_of_squares(params_.grad() + own.begin, own.size());
        if (options_.zero_stage == 1) {
            double local = sum;
            check_mpi(MPI_Allreduce(&local, &sum, 1, MPI_DOUBLE, MPI_SUM, comm_),
                              "GradientSync::grad_norm: MPI_Allreduce");
        }
        return std::sqrt(sum) * gradient_scale();
    }

    /// ZeRO-1: after every rank updated its shard, gives every rank every updated parameter.
    void gather_parameters() {
        if (options_.zero_stage == 0 || world_size_ == 1) return;
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<int>& counts = gather_counts_;
        std::vector<int>& displs = gather_displs_;
        counts.clear();
        displs.clear();
        for (const ShardRange& s : shards_) {
            counts.push_back(static_cast<int>(s.size()));
            displs.push_back(static_cast<int>(s.begin));
        }
        params_.mark_changed();  // before: a gather that fails midway has written some values
        check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params_.data(),
                                         counts.data(), displs.data(), detail::mpi_type<T>(),
                                         comm_),
                          "GradientSync::gather_parameters: MPI_Allgatherv");
        const double ms = elapsed_ms(t0);
        add_timing(ms, ms);
    }

    /// The communication time since the previous call (one step's, when called once a step).
    CommTiming take_timing() {
        std::lock_guard<std::mutex> lock(mutex_);
        const CommTiming t = timing_;
        timing_ = {};
        return t;
    }

    /// The buckets, in the order they are reduced (top of the model first), for tests and docs.
    std::vector<ShardRange> buckets() const {
        std::vector<ShardRange> out;
        for (const Bucket& b : buckets_) out.push_back(b.range);
        return out;
    }

private:
    struct Bucket {
        ShardRange range;
        std::vector<int> counts;  // ZeRO-1: each rank's part of the range (reduce-scatter counts)
    };

    static double elapsed_ms(std::chrono::steady_clock::time_point since) {
        return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since)
            .count();
    }

    void add_timing(double busy_ms, double exposed_ms) {
        std::lock_guard<std::mutex> lock(mutex_);
        timing_.busy_ms += busy_ms;
        timing_.exposed_ms += exposed_ms;
    }

    // Buckets end at the points where the backward reports gradients final (overlap), or one
    // bucket covers the buffer; none exceeds MPI's int count.
    void make_buckets() {
        std::vector<std::int64_t> starts;
        if (options_.overlap) starts = model_.gradient_ready_offsets();
        starts.push_back(0);
        std::int64_t end = params_.size();
        for (std::int64_t begin : starts) {
            const auto bytes = static_cast<std::int64_t>((end - begin) * sizeof(T));
            if (begin != 0 && bytes < options_.bucket_bytes) continue;
            for (std::int64_t piece_end = end; piece_end > begin; piece_end -= INT_MAX)
                add_bucket({std::max(begin, piece_end - INT_MAX), piece_end});
            end = begin;
        }
        requests_.assign(buckets_.size(), MPI_REQUEST_NULL);
        indices_.assign(buckets_.size(), 0);
        ready_begin_ = params_.size();
    }

    void add_bucket(ShardRange range) {
        Bucket b{range, {}};
        for (const ShardRange& s : shards_) {
            const std::int64_t lo = std::max(range.begin, s.begin), hi = std::min(range.end, s.end);
            b.counts.push_back(static_cast<int>(std::max<std::int64_t>(0, hi - lo)));
        }
        buckets_.push_back(std::move(b));
    }

    // Starts bucket i's collective (or runs it, when blocking): the sum lands in place.
    void start(std::size_t i, bool blocking) {
        Bucket& b = buckets_[i];
        T* g = params_.grad() + b.range.begin;
        const auto count = static_cast<int>(b.range.size());
        const MPI_Datatype type = detail::mpi_type<T>();
        if (options_.zero_stage == 0) {
            check_mpi(
                blocking ? MPI_Allreduce(MPI_IN_PLACE, g, count, type, MPI_SUM, comm_)
                         : MPI_Iallreduce(MPI_IN_PLACE, g, count, type, MPI_SUM, comm_,
                                          &requests_[i]),
                "GradientSync: MPI_Allreduce");
        } else {
            check_mpi(
                blocking ? MPI_Reduce_scatter(MPI_IN_PLACE, g, b.counts.data(), type, MPI_SUM,
                                              comm_)
                         : MPI_Ireduce_scatter(MPI_IN_PLACE, g, b.counts.data(), type, MPI_SUM,
                                               comm_, &requests_[i]),
                "GradientSync: MPI_Reduce_scatter");
        }
    }

    // In-place reduce-scatter leaves this rank's part at the start of the range: move it to its
    // place in the buffer (within the same bucket, so no other collective's memory).
    void finish(std::size_t i) {
        if (options_.zero_stage == 0) return;
        const Bucket& b = buckets_[i];
        const std::int64_t own = std::max(b.range.begin, shard().begin);
        const int count = b.counts[static_cast<std::size_t>(rank_)];
        if (count > 0 && own != b.range.begin) {
            T* g = params_.grad();
            std::memmove(g + own, g + b.range.begin, static_cast<std::size_t>(count) * sizeof(T));
        }
    }

    // Called by the backward (training thread) when gradients [begin, end of buffer) are final.
    void gradients_ready(std::int64_t begin) {
        if (!armed_) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            ready_begin_ = std::min(ready_begin_, begin);
        }
        wake_.notify_one();
    }

    bool bucket_ready() const {
        return started_ < buckets_.size() && buckets_[started_].range.begin >= ready_begin_;
    }

    // The communication thread: starts buckets as they become ready, in order, and keeps every
    // collective in flight moving with MPI_Testsome until all are done. It is the only thread in
    // MPI between arm() and the end of reduce(), which MPI_THREAD_SERIALIZED requires.
    void communicate() {
        std::unique_lock<std::mutex> lock(mutex_);
        std::size_t active = 0;
        auto busy_since = std::chrono::steady_clock::now();
        try {
            for (;;) {
                while (bucket_ready()) {
                    const std::size_t i = started_++;
                    lock.unlock();
                    if (active++ == 0) busy_since = std::chrono::steady_clock::now();
                    start(i, false);
                    lock.lock();
                }
                if (active > 0) {
                    lock.unlock();
                    int done = 0;
                    check_mpi(
                        MPI_Testsome(static_cast<int>(requests_.size()), requests_.data(), &done,
                                     indices_.data(), MPI_STATUSES_IGNORE),
                        "GradientSync: MPI_Testsome");
                    if (done == MPI_UNDEFINED) done = 0;
                    for (int k = 0; k < done; ++k) finish(static_cast<std::size_t>(indices_[k]));
                    active -= static_cast<std::size_t>(done);
                    lock.lock();
                    if (active == 0 && done > 0) timing_.busy_ms += elapsed_ms(busy_since);
                    completed_ += static_cast<std::size_t>(done);
                    if (completed_ == buckets_.size()) done_.notify_all();
                }
                if (stop_) return;
                const auto has_work = [&] { return stop_ || bucket_ready(); };
                if (active > 0) {
                    wake_.wait_for(lock, options_.poll_interval, has_work);
                } else {
                    wake_.wait(lock, has_work);
                }
            }
        } catch (const std::exception& e) {
            if (!lock.owns_lock()) lock.lock();
            error_ = e.what();
            done_.notify_all();
        }
    }

    GPT<T>& model_;
    Parameters<T>& params_;
    GradientSyncOptions options_;
    MPI_Comm comm_;
    int rank_ = 0, world_size_ = 1;
    std::vector<ShardRange> shards_;  // every rank's (all the whole buffer without ZeRO-1)
    std::vector<Bucket> buckets_;
    std::vector<MPI_Request> requests_;
    std::vector<int> indices_, gather_counts_, gather_displs_;
    bool armed_ = false;  // training thread only
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    // Guarded by mutex_:
    std::int64_t ready_begin_ = 0;  // gradients [ready_begin_, end) are final
    std::size_t started_ = 0, completed_ = 0;
    bool stop_ = false;
    std::string error_;
    CommTiming timing_;
};

}  // namespace nanogpt
