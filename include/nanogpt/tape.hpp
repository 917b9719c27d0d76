// tape.hpp — the tape behind reverse-mode autograd.
//
// Every differentiable op runs its forward kernel at once and records ONE node on the tape: a
// closure that knows how to push the output's gradient back into its inputs' gradients.
// backward() replays the nodes in reverse order. There is one tape per thread (Tape::current()),
// and the tape also owns the memory of one graph: activations and activation gradients come from
// its arenas and are all forgotten by begin_graph(), which GPT::forward calls first. A tensor
// from an older graph knows its generation, so touching it afterwards is a clear error instead
// of reading reused memory. Ops called outside GPT::forward use a GraphScope for the same.
// Builds on detail/arena.hpp; read next: tensor.hpp.
#pragma once

#include <array>             // std::array
#include <atomic>            // std::atomic
#include <chrono>            // std::chrono::steady_clock (op profiling)
#include <cstddef>           // std::size_t
#include <cstring>           // std::strcmp
#include <cstdint>           // std::uint64_t, std::int32_t, std::int64_t
#include <initializer_list>  // std::initializer_list
#include <new>               // placement new
#include <stdexcept>         // std::logic_error
#include <type_traits>       // std::decay_t
#include <utility>           // std::forward, std::move
#include <vector>            // std::vector

#include <nanogpt/detail/arena.hpp>
#include <nanogpt/detail/parallel.hpp>

namespace nanogpt {

namespace detail {
inline double seconds_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}
}  // namespace detail

/// One input of a recorded op, kept so that the tape can be listed (Tape::listing): the output
/// of an earlier op, known by its gradient slot, or a leaf (a parameter, token ids, any tensor
/// made outside the graph), known by its address. Tensors convert to it, so an op records
/// `record("matmul", {a, b}, backward_fn)`.
struct NodeInput {
    std::int32_t slot = -1;         // >= 0: the gradient slot of an earlier op's output
    const void* address = nullptr;  // the tensor's data; null for an absent optional input
};

class Tape {
public:
    /// The calling thread's tape.
    static Tape& current() {
        thread_local Tape tape;
        return tape;
    }

    /// The calling thread's tape if it exists and is not yet destroyed (at thread exit), else
    /// null: for destructors that may run after it (a static model's).
    static Tape* current_if_alive() { return alive() ? &current() : nullptr; }

    Tape() { alive() = true; }
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;
    ~Tape() {
        destroy_nodes();
        alive() = false;
    }

    /// Identifies the current graph; tensors made by ops remember it.
    std::uint64_t generation() const { return generation_; }

    /// False inside a NoGradGuard: ops then record nothing and outputs never require grad.
    bool grad_enabled() const { return grad_enabled_; }
    void set_grad_enabled(bool enabled) { grad_enabled_ = enabled; }

    /// Frees the previous graph (its nodes, activations and activation gradients) and starts a
    /// new one. Memory is kept for reuse, so steady-state training does not allocate.
    void begin_graph() {
        destroy_nodes();
        activations_.reset();
        gradients_.reset();
        nodes_memory_.reset();
        grad_slots_.clear();
        free_gradients_.clear();
        inputs_.clear();
        slots_owned_ = 0;
        listed_bytes_ = 0;
        consumed_ = false;
        orphaned_ = false;
        generation_ = next_generation();
        if (profiling_) mark_ = detail::seconds_now();
    }

    /// Uninitialised memory for an op's output, valid until the next begin_graph().
    void* allocate(std::size_t bytes) { return activations_.allocate(bytes); }

    /// Workspace for one backward kernel at a time (e.g. attention's dS): the same memory serves
    /// every node, so it costs the largest request once instead of one copy per layer. Valid
    /// until the next call.
    void* backward_scratch(std::size_t bytes) {
        scratch_.reset();  // keeps (and merges) its blocks, so this allocates only while growing
        return scratch_.allocate(bytes);
    }

    /// Registers a gradient of `bytes` for an op output; the memory is only allocated (zeroed)
    /// when backward first touches it, so inference never pays for gradients.
    ///
    /// Activation gradients are short-lived: an output's gradient is complete once every consumer
    /// has run its backward, and dead once its own op has run. So backward() hands each op's
    /// output gradients back as soon as that op's node has run, and later (earlier-in-the-model)
    /// gradients of the same size reuse the memory — a GPT then holds a few layers' worth of
    /// activation gradients instead of all of them. Reading such a gradient after backward() is
    /// an error unless set_retain_grads(true) (like PyTorch's retain_grad, for inspection).
    /// `dims`/`ndim` are the output's shape, for listing() only.
    std::int32_t add_grad_slot(std::size_t bytes, const std::array<std::int64_t, 4>& dims = {},
                               int ndim = 0) {
        grad_slots_.push_back(GradSlot{nullptr, bytes, false, dims, ndim});
        return static_cast<std::int32_t>(grad_slots_.size() - 1);
    }
    void* slot_gradient(std::int32_t slot) {
        GradSlot& s = live_slot(slot);
        if (s.memory == nullptr) s.memory = take_gradient_memory(s.bytes, true);
        return s.memory;
    }
    /// Like slot_gradient, but when nothing has touched the gradient yet the memory is handed
    /// out uninitialised and `overwrite` is set: the caller must then write every element
    /// (instead of adding). Saves zeroing a buffer only to add into it (e.g. a GEMM's output).
    void* slot_gradient_for_write(std::int32_t slot, bool& overwrite) {
        GradSlot& s = live_slot(slot);
        overwrite = s.memory == nullptr;
        if (overwrite) s.memory = take_gradient_memory(s.bytes, false);
        return s.memory;
    }

    /// Keep every activation gradient until the next graph (off by default: costs memory).
    void set_retain_grads(bool retain) { retain_grads_ = retain; }
    bool retain_grads() const { return retain_grads_; }

    /// Records one node for the op `name` (a string literal) that read `inputs`: `backward_fn()`
    /// will be called once, in reverse order, by backward(). The inputs serve listing() only.
    template <class Fn>
    void record(const char* name, std::initializer_list<NodeInput> inputs, Fn&& backward_fn) {
        using Closure = std::decay_t<Fn>;
        void* where = nodes_memory_.allocate(sizeof(Closure));
        auto* closure = new (where) Closure(std::forward<Fn>(backward_fn));
        // Every op allocates its outputs before recording, so the slots registered since the
        // previous node are this op's outputs: their gradients die when this node has run.
        const auto first_slot = static_cast<std::int32_t>(slots_owned_);
        slots_owned_ = grad_slots_.size();
        // What listing() shows: the inputs, and the activation memory taken since the previous
        // node (this op's outputs and what its backward keeps). A few stores per op, into
        // vectors whose capacity survives begin_graph().
        const auto first_input = static_cast<std::int32_t>(inputs_.size());
        for (const NodeInput& input : inputs)
            if (input.address != nullptr) inputs_.push_back(input);
        const std::size_t in_use = activations_.bytes_in_use();
        nodes_.push_back(Node{closure, [](void* c) { (*static_cast<Closure*>(c))(); },
                              [](void* c) { static_cast<Closure*>(c)->~Closure(); }, name,
                              first_slot, static_cast<std::int32_t>(slots_owned_), first_input,
                              static_cast<std::int32_t>(inputs_.size()), in_use - listed_bytes_});
        listed_bytes_ = in_use;
        if (profiling_) {  // the op's forward ran since the previous mark
            const double now = detail::seconds_now();
            stats_for(name).forward_seconds += now - mark_;
            stats_for(name).calls += 1;
            mark_ = now;
        }
    }

    /// Runs every recorded node in reverse, then marks the graph consumed: a second backward()
    /// on it is an error (its nodes are gone), but its tensors stay readable until begin_graph().
    void backward() {
        if (consumed_) {
            throw std::logic_error(
                "backward(): this graph was already consumed by an earlier backward(); "
                "run the forward pass again");
        }
        if (orphaned_) {
            throw std::logic_error(
                "backward(): the model whose forward recorded this graph was destroyed; ops "
                "after a model's forward need a graph of their own (GraphScope)");
        }
        for (std::size_t i = nodes_.size(); i-- > 0;) {
            const double start = profiling_ ? detail::seconds_now() : 0.0;
            nodes_[i].run(nodes_[i].closure);
            if (!retain_grads_) release_output_gradients(nodes_[i]);
            if (profiling_)
                stats_for(nodes_[i].name).backward_seconds += detail::seconds_now() - start;
        }
        destroy_nodes();
        consumed_ = true;
    }

    bool consumed() const { return consumed_; }

    /// For a model being destroyed: if `generation` (the graph its last forward began) is still
    /// current and has nodes, their closures point into the model's parameters and gradients.
    /// They are dropped, and backward() on this graph then throws instead of running them into
    /// freed memory; the graph's tensors stay readable. A newer graph is left alone.
    void orphan_graph(std::uint64_t generation) {
        if (generation != generation_ || nodes_.empty()) return;
        destroy_nodes();
        orphaned_ = true;
    }

    /// Per-op timing (forward: time from the previous op's record to this one's; backward: the
    /// node's run), for finding the next bottleneck. Off by default; costs nothing when off.
    struct OpProfile {
        const char* name;
        double forward_seconds = 0.0, backward_seconds = 0.0;
        std::int64_t calls = 0;
    };
    void set_profiling(bool on) {
        profiling_ = on;
        mark_ = detail::seconds_now();
    }
    const std::vector<OpProfile>& profile() const { return profile_; }
    std::size_t num_nodes() const { return nodes_.size(); }

    /// One recorded op as listing() reports it. An input is `node` >= 0 (the output of that
    /// earlier entry) or a leaf, `node` = -1, known by its `address`.
    struct Entry {
        struct Input {
            std::int32_t node;
            const void* address;
        };
        const char* name;
        std::array<std::int64_t, 4> dims;  // the output's shape (the first output's)
        int ndim;
        std::vector<Input> inputs;
        std::size_t activation_bytes;  // what this op added to the graph's activation memory
    };
    /// The graph recorded since begin_graph(), in execution order (entry i is node i). Read it
    /// before backward(), which consumes the nodes. See tape_print.hpp for text and DOT.
    std::vector<Entry> listing() const {
        std::vector<std::int32_t> owner(grad_slots_.size(), -1);  // slot -> node
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            for (std::int32_t k = nodes_[i].first_slot; k < nodes_[i].end_slot; ++k)
                owner[static_cast<std::size_t>(k)] = static_cast<std::int32_t>(i);
        std::vector<Entry> entries;
        for (const Node& node : nodes_) {
            Entry e{node.name, {}, 0, {}, node.activation_bytes};
            if (node.first_slot < node.end_slot) {
                const GradSlot& out = grad_slots_[static_cast<std::size_t>(node.first_slot)];
                e.dims = out.dims;
                e.ndim = out.ndim;
            }
            for (std::int32_t k = node.first_input; k < node.end_input; ++k) {
                const NodeInput& in = inputs_[static_cast<std::size_t>(k)];
                const std::int32_t from =
                    in.slot >= 0 && static_cast<std::size_t>(in.slot) < owner.size()
                        ? owner[static_cast<std::size_t>(in.slot)]
                        : -1;
                e.inputs.push_back(Entry::Input{from, in.address});
            }
            entries.push_back(std::move(e));
        }
        return entries;
    }
    /// Bytes of activations and activation gradients held at the high-water mark.
    std::size_t peak_bytes() const { return activations_.peak_bytes() + gradients_.peak_bytes(); }
    /// Restarts the high-water mark (e.g. to measure one configuration after another).
    void reset_peak_bytes() {
        activations_.reset_peak();
        gradients_.reset_peak();
    }

private:
    struct Node {
        void* closure;
        void (*run)(void*);
        void (*destroy)(void*);
        const char* name;
        std::int32_t first_slot, end_slot;    // gradient slots of this op's outputs
        std::int32_t first_input, end_input;  // its inputs in inputs_
        std::size_t activation_bytes;         // activation memory taken for this op
    };

    OpProfile& stats_for(const char* name) {
        for (auto& p : profile_)
            if (p.name == name || std::strcmp(p.name, name) == 0) return p;
        profile_.push_back(OpProfile{name});
        return profile_.back();
    }
    struct GradSlot {
        void* memory;
        std::size_t bytes;
        bool released;
        std::array<std::int64_t, 4> dims;  // the output's shape, for listing()
        int ndim;
    };
    struct FreeGradient {
        void* memory;
        std::size_t bytes;
    };

    GradSlot& live_slot(std::int32_t slot) {
        GradSlot& s = grad_slots_.at(static_cast<std::size_t>(slot));
        if (s.released) {
            throw std::logic_error(
                "Tensor::grad(): the gradient of an intermediate result is freed during "
                "backward() once its op has used it; call Tape::current().set_retain_grads(true) "
                "before the forward pass to keep it");
        }
        return s;
    }

    // Memory for a gradient (zeroed if asked): a released block of exactly this size if there is
    // one (the same shapes recur in every layer), else fresh arena memory.
    void* take_gradient_memory(std::size_t bytes, bool zeroed) {
        void* memory = nullptr;
        for (std::size_t i = free_gradients_.size(); i-- > 0 && memory == nullptr;) {
            if (free_gradients_[i].bytes != bytes) continue;
            memory = free_gradients_[i].memory;
            free_gradients_[i] = free_gradients_.back();
            free_gradients_.pop_back();
        }
        if (memory == nullptr) memory = gradients_.allocate(bytes);
        if (zeroed)
            detail::parallel_fill(static_cast<unsigned char*>(memory),
                                  static_cast<std::int64_t>(bytes), static_cast<unsigned char>(0));
        return memory;
    }
    void release_output_gradients(const Node& node) {
        for (std::int32_t k = node.first_slot; k < node.end_slot; ++k) {
            GradSlot& s = grad_slots_[static_cast<std::size_t>(k)];
            if (s.memory != nullptr) free_gradients_.push_back(FreeGradient{s.memory, s.bytes});
            s.memory = nullptr;
            s.released = true;
        }
    }

    // Unique across threads, so a graph's number names it on every tape.
    static std::uint64_t next_generation() {
        static std::atomic<std::uint64_t> counter{1};
        return ++counter;
    }
    static bool& alive() {
        thread_local bool flag = false;  // trivially destructible: readable after ~Tape
        return flag;
    }

    void destroy_nodes() {
        for (auto& node : nodes_) node.destroy(node.closure);
        nodes_.clear();
    }

    detail::Arena activations_;
    detail::Arena gradients_;
    detail::Arena nodes_memory_;
    detail::Arena scratch_;
    std::vector<Node> nodes_;
    std::vector<GradSlot> grad_slots_;
    std::vector<FreeGradient> free_gradients_;  // released gradient memory, reused by size
    std::vector<NodeInput> inputs_;             // every node's inputs, in node order
    std::size_t slots_owned_ = 0;               // slots already assigned to a recorded node
    std::size_t listed_bytes_ = 0;              // activation bytes already assigned to a node
    bool retain_grads_ = false;
    std::uint64_t generation_ = 1;  // 0 means "not made by an op" in Tensor
    bool grad_enabled_ = true;
    bool consumed_ = false;
    bool orphaned_ = false;  // orphan_graph: the model behind the nodes is gone
    bool profiling_ = false;
    double mark_ = 0.0;
    std::vector<OpProfile> profile_;
};

/// RAII scope for ops called outside GPT::forward (which manages graphs itself). Graph memory
/// is freed only when a new graph begins, so a loop of raw ops (linear, gelu, layernorm, ...)
/// with no backward, e.g. under NoGradGuard, would grow it every iteration; a GraphScope per
/// iteration starts a graph on entry and frees it on exit, so the loop reuses the same memory.
///
///     for (...) {
///         nanogpt::GraphScope scope;
///         auto y = nanogpt::gelu(nanogpt::linear(x, w, b));  // graph memory
///         result = y.to_vector();  // copy out what should outlive the scope
///     }
///
/// Tensors made inside the scope, and those of the graph current before it, are invalid after
/// it (using one throws std::logic_error). Scopes do not nest: an inner one frees the outer's.
class GraphScope {
public:
    GraphScope() { Tape::current().begin_graph(); }
    ~GraphScope() { Tape::current().begin_graph(); }
    GraphScope(const GraphScope&) = delete;
    GraphScope& operator=(const GraphScope&) = delete;
};

/// RAII scope in which ops record nothing (inference, evaluation).
class NoGradGuard {
public:
    NoGradGuard() : previous_(Tape::current().grad_enabled()) {
        Tape::current().set_grad_enabled(false);
    }
    ~NoGradGuard() { Tape::current().set_grad_enabled(previous_); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};

}  // namespace nanogpt
