// arena.hpp — bump allocator that hands out 64-byte-aligned memory and forgets it all at once.
//
// Activations and their gradients live for exactly one graph (one forward + backward), so they
// come from an arena: allocation is a pointer bump, freeing is a reset. After a reset the arena
// keeps its memory (merged into one block), so a training loop stops allocating after step one.
#pragma once

#include <algorithm>  // std::max
#include <cstddef>    // std::size_t, std::byte
#include <memory>     // std::unique_ptr
#include <new>        // std::align_val_t
#include <vector>     // std::vector

namespace nanogpt::detail {

class Arena {
public:
    static constexpr std::size_t kAlignment = 64;  // one cache line; also fits AVX-512 loads

    Arena() = default;
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;

    /// Returns `bytes` of uninitialised memory aligned to kAlignment; valid until reset().
    void* allocate(std::size_t bytes) {
        bytes = round_up(bytes == 0 ? 1 : bytes);
        if (blocks_.empty() || used_ + bytes > blocks_.back().size) {
            // Grow geometrically so a first pass needs few blocks; reset() merges them.
            const std::size_t previous = blocks_.empty() ? 0 : blocks_.back().size;
            add_block(std::max({bytes, 2 * previous, std::size_t{1} << 20}));
        }
        std::byte* p = blocks_.back().memory.get() + used_;
        used_ += bytes;
        in_use_ += bytes;
        if (in_use_ > peak_) peak_ = in_use_;
        return p;
    }

    /// Forgets every allocation. If the last cycle needed several blocks, they are replaced
    /// by a single block big enough for all of them, so the next cycle does not allocate.
    void reset() {
        if (blocks_.size() > 1) {
            std::size_t total = 0;
            for (const auto& b : blocks_) total += b.size;
            blocks_.clear();
            add_block(total);
        }
        used_ = 0;
        in_use_ = 0;
    }

    std::size_t capacity() const {
        std::size_t total = 0;
        for (const auto& b : blocks_) total += b.size;
        return total;
    }
    std::size_t peak_bytes() const { return peak_; }
    /// Bytes handed out since the last reset().
    std::size_t bytes_in_use() const { return in_use_; }
    /// Starts a new high-water mark from what is in use now.
    void reset_peak() { peak_ = in_use_; }

private:
    struct AlignedDelete {
        void operator()(std::byte* p) const {
            ::operator delete[](p, std::align_val_t{kAlignment});
        }
    };
    struct Block {
        std::unique_ptr<std::byte[], AlignedDelete> memory;
        std::size_t size;
    };

    static std::size_t round_up(std::size_t n) {
        return (n + kAlignment - 1) / kAlignment * kAlignment;
    }

    void add_block(std::size_t size) {
        auto* raw = static_cast<std::byte*>(::operator new[](size, std::align_val_t{kAlignment}));
        blocks_.push_back(Block{std::unique_ptr<std::byte[], AlignedDelete>(raw), size});
        used_ = 0;
    }

    std::vector<Block> blocks_;
    std::size_t used_ = 0;    // bytes used in the last block
    std::size_t in_use_ = 0;  // bytes handed out since the last reset
    std::size_t peak_ = 0;    // high-water mark of in_use_
};

}  // namespace nanogpt::detail
