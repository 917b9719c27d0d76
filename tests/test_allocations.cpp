// After the first training step, a step (forward, backward, clipping, AdamW) allocates nothing:
// activations, their gradients and the tape's closures live in arenas that are reset, not freed.
// Checked by counting calls to the global operator new, which this test binary replaces.
#include <catch2/catch.hpp>

#include <atomic>   // std::atomic
#include <cstdlib>  // std::malloc, std::free
#include <new>      // std::bad_alloc, std::align_val_t

#include <nanogpt/model.hpp>
#include <nanogpt/optim.hpp>

#include "allocation_probe.hpp"

namespace {
std::atomic<long> g_allocations{0};
std::atomic<std::size_t> g_largest{0};

void record(std::size_t n) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    std::size_t seen = g_largest.load(std::memory_order_relaxed);
    while (n > seen && !g_largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
    }
}

// Out of line, so GCC's -Wmismatched-new-delete does not pair the replaced operator new with a
// bare free() (both sides are replaced here, which it cannot see).
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void nanogpt_test::reset_largest_allocation() { g_largest.store(0); }
std::size_t nanogpt_test::largest_allocation() { return g_largest.load(); }

// Replacements of the global allocation functions for the whole test binary: they only count.
void* operator new(std::size_t n) {
    record(n);
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
    record(n);
    const auto align = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return ::operator new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
    return ::operator new(n, t);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try {
        return ::operator new(n, a);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
    return ::operator new(n, a, t);
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }

TEST_CASE("allocations: a steady-state training step allocates nothing") {
    using namespace nanogpt;
    GPTConfig config = GPTConfig::tiny();
    config.dropout = 0.1;  // exercise the dropout path too
    GPT<float> model(config, 3);
    AdamW<float> optimizer(model.parameters());
    Tensor<std::int32_t> x(Shape{4, config.block_size}), y(x.shape());
    Random rng(5);
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        x.data()[i] = static_cast<std::int32_t>(rng.uniform_int(32));
        y.data()[i] = static_cast<std::int32_t>(rng.uniform_int(32));
    }
    auto step = [&] {
        auto out = model.forward(x, y);
        model.zero_grad();
        out.loss.backward();
        clip_grad_norm(model.parameters(), 1.0);
        optimizer.step(1e-3);
        return out.loss.item();
    };
    for (int warmup = 0; warmup < 3; ++warmup) step();  // arenas and pack buffers reach their size
    const long before = g_allocations.load();
    for (int i = 0; i < 3; ++i) step();
    CHECK(g_allocations.load() - before == 0);
}
