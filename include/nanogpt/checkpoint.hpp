// checkpoint.hpp — one binary file holds everything needed to sample from a model or resume
// its training exactly. Layout of version 3 (all integers and floats little-endian, as on x86 and
// ARM; docs/formats.md describes every version and how to add a field):
//
//   magic "NGPTCKPT" (8 bytes) | u32 format version (3) | u32 bytes per element (4 or 8)
//   u64 total file size in bytes (so truncation is reported as such)
//   u32 element type (0 float32, 1 float64)                                 [version 2 and later]
//   config:    i64 block_size, vocab_size, n_layer, n_head, n_embd | f64 dropout | u8 bias
//              | u8 dtype (0 float32, 1 bfloat16)                               [version 3 and later]
//   tokenizer: u32 kind (0 none, 1 characters) | u64 n | n x (u32 length, UTF-8 bytes)
//   training:  i64 iter | f64 best_val_loss | 2 x generator state (model dropout, data sampler)
//   weights:   u64 n | n elements
//   optimizer: u8 present | [f64 beta1, beta2, eps, weight_decay | i64 steps | n elements m | n v]
//   u64 FNV-1a hash of every byte before it
//
// Files are written durably and atomically (file_io.hpp), so a crash mid-write never destroys the
// previous checkpoint. Writing and resuming stream: save_checkpoint hands the bytes to the file as
// it makes them, and load_checkpoint_into reads the weights and moments straight into the model
// and optimizer (only a sharded optimizer's range, for ZeRO-1), so neither holds a second copy of
// a model that barely fits in memory. The reader accepts every version from 1 to
// kCheckpointVersion. It checks the size, magic, version and hash before parsing, then every field against the bytes that remain
// BEFORE allocating anything for it, and the configuration against the limits in config.hpp; a
// truncated, corrupt or mismatched file throws std::runtime_error naming the file. The hash detects
// accidents, not attacks: anyone can recompute it, so the checks never rely on it.
// PendingCheckpoint keeps a checkpoint in "<path>.pending" until the training step after it has
// proved the weights sound (the divergence rule, docs/formats.md).
// Builds on model.hpp and optim.hpp; read next: safetensors.hpp.
#pragma once

#include <algorithm>    // std::copy, std::min, std::max
#include <cerrno>       // errno
#include <cstdint>      // fixed-width integers
#include <cstdio>       // std::FILE, std::fopen, std::fread, std::rewind
#include <filesystem>   // std::filesystem::is_regular_file, file_size
#include <cstring>      // std::memcpy
#include <functional>   // std::function
#include <memory>       // std::unique_ptr
#include <limits>       // std::numeric_limits
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <system_error>  // std::error_code
#include <type_traits>  // std::type_identity_t (so nullptr can be passed as the optimizer), is_same
#include <utility>      // std::move
#include <vector>       // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/detail/hash.hpp>
#include <nanogpt/file_io.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/optim.hpp>

namespace nanogpt {

inline constexpr char kCheckpointMagic[8] = {'N', 'G', 'P', 'T', 'C', 'K', 'P', 'T'};
/// The version save_checkpoint writes; load_checkpoint reads this one and every earlier one.
inline constexpr std::uint32_t kCheckpointVersion = 3;

/// The element type code of version 2 headers.
template <class T>
constexpr std::uint32_t checkpoint_element_type() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "checkpoints hold float or double");
    return std::is_same_v<T, float> ? 0 : 1;
}

/// Where a training run stands, saved so that resuming continues it exactly.
struct TrainingState {
    std::int64_t iter = 0;  // the next iteration to run
    double best_val_loss = std::numeric_limits<double>::infinity();
    Random::State data_rng{};  // the batch sampler's generator
};

/// Everything a checkpoint file holds, in memory.
template <class T>
struct Checkpoint {
    GPTConfig config;
    std::vector<std::string> vocabulary;  // character tokenizer symbols (empty: none saved)
    TrainingState training;
    Random::State dropout_rng{};
    std::vector<T> weights;
    bool has_optimizer = false;
    AdamWConfig adamw;
    std::int64_t adamw_steps = 0;
    std::vector<T> adamw_m, adamw_v;

    /// A model with this checkpoint's configuration and weights.
    GPT<T> make_model() const {
        GPT<T> model(config);
        restore(model, nullptr);
        return model;
    }

    /// Copies weights (and optimizer state, when both exist) into an existing model whose
    /// configuration must match (except its dtype, which is not part of the architecture).
    void restore(GPT<T>& model, AdamW<T>* optimizer) const {
        GPTConfig architecture = model.config();
        architecture.dtype = config.dtype;
        if (!(architecture == config))
            throw std::runtime_error("checkpoint: model configuration does not match");
        std::copy(weights.begin(), weights.end(), model.parameters().data());
        model.parameters().mark_changed();
        model.dropout_generator().set_state(dropout_rng);
        if (optimizer != nullptr && has_optimizer) {
            // A sharded optimizer (ZeRO-1) takes its range of the moments.
            const auto begin = static_cast<std::ptrdiff_t>(optimizer->shard_begin());
            const auto end = static_cast<std::ptrdiff_t>(optimizer->shard_end());
            std::copy(adamw_m.begin() + begin, adamw_m.begin() + end, optimizer->m().begin());
            std::copy(adamw_v.begin() + begin, adamw_v.begin() + end, optimizer->v().begin());
            optimizer->set_steps(adamw_steps);
        }
    }
};

namespace detail {

/// save_checkpoint's output: little-endian values, hashed (FNV-1a) and passed on in pieces of
/// about 1 MiB. Without a destination it only counts them, which gives the file size first.
class ByteWriter {
public:
    ByteWriter() = default;
    explicit ByteWriter(const WriteBytes& out) : out_(&out) {}

    template <class V>
    void put(const V& value) {
        put_bytes(&value, sizeof(V));
    }
    template <class V>
    void put_array(const V* values, std::size_t n) {
        put_bytes(values, n * sizeof(V));
    }
    void put_state(const Random::State& s) {
        put_array(s.words, 4);
        put(s.spare_normal);
        put(static_cast<std::uint8_t>(s.has_spare_normal));
    }
    /// Passes on what is still buffered.
    void flush() {
        if (out_ != nullptr && !buffer_.empty()) (*out_)(buffer_.data(), buffer_.size());
        buffer_.clear();
    }
    bool counting() const { return out_ == nullptr; }
    std::uint64_t size() const { return size_; }
    std::uint64_t hash() const { return hash_; }

private:
    void put_bytes(const void* data, std::size_t n) {
        size_ += n;
        if (out_ == nullptr) return;
        hash_ = fnv1a(data, n, hash_);
        const auto* p = static_cast<const unsigned char*>(data);
        if (buffer_.size() + n > kBuffer) flush();
        if (n >= kBuffer) return (*out_)(p, n);  // large arrays go straight through
        buffer_.insert(buffer_.end(), p, p + n);
    }

    static constexpr std::size_t kBuffer = std::size_t{1} << 20;
    const WriteBytes* out_ = nullptr;
    std::vector<unsigned char> buffer_;
    std::uint64_t size_ = 0, hash_ = detail::kFnv1aStart;
};

/// Reads values back with a bounds check on every field, naming it when the file ends early:
/// from bytes in memory, or (with a file) straight from the file, which is never held whole.
class ByteReader {
public:
    ByteReader(const std::vector<unsigned char>& bytes, std::size_t end, std::string path)
        : bytes_(bytes.data()), end_(end), path_(std::move(path)) {}
    ByteReader(std::FILE* file, std::size_t end, std::string path)
        : file_(file), end_(end), path_(std::move(path)) {}

    template <class V>
    V get(const char* field) {
        V value;
        take(&value, sizeof(V), field);
        return value;
    }
    template <class V>
    void get_array(V* out, std::size_t n, const char* field) {
        if (n > (end_ - pos_) / sizeof(V)) fail(std::string("truncated in ") + field);
        take(out, n * sizeof(V), field);
    }
    /// Passes over n elements of V without reading them.
    template <class V>
    void skip_array(std::size_t n, const char* field) {
        if (n > (end_ - pos_) / sizeof(V)) fail(std::string("truncated in ") + field);
        const std::size_t bytes = n * sizeof(V);
        if (file_ != nullptr &&
            (bytes > static_cast<std::size_t>(std::numeric_limits<long>::max()) ||
             std::fseek(file_, static_cast<long>(bytes), SEEK_CUR) != 0)) {
            fail(std::string("cannot read ") + field);
        }
        pos_ += bytes;
    }
    Random::State get_state(const char* field) {
        Random::State s{};
        get_array(s.words, 4, field);
        s.spare_normal = get<double>(field);
        s.has_spare_normal = get<std::uint8_t>(field) != 0;
        return s;
    }
    std::size_t remaining() const { return end_ - pos_; }
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("checkpoint '" + path_ + "': " + what);
    }

private:
    void take(void* out, std::size_t n, const char* field) {
        if (n > end_ - pos_) fail(std::string("truncated in ") + field);
        if (file_ == nullptr) {
            std::memcpy(out, bytes_ + pos_, n);
        } else if (std::fread(out, 1, n, file_) != n) {
            fail(std::string("cannot read ") + field);
        }
        pos_ += n;
    }

    const unsigned char* bytes_ = nullptr;
    std::FILE* file_ = nullptr;
    std::size_t end_;
    std::size_t pos_ = 0;
    std::string path_;
};

}  // namespace detail

/// Hands save_checkpoint AdamW's moments piece by piece: fills out[0, count) with m (which = 0)
/// or v (which = 1) of the elements [begin, begin + count). save_checkpoint asks for all of m,
/// then all of v, in order, in pieces of kCheckpointPiece elements (the last one shorter), so
/// processes that hold shards of them (ZeRO-1) can send them in that same order.
template <class T>
using MomentReader =
    std::function<void(int which, std::int64_t begin, std::int64_t count, T* out)>;
inline constexpr std::int64_t kCheckpointPiece = std::int64_t{1} << 20;

namespace detail {

// Every field of the file but the final hash, in order (counted first, then written).
template <class T>
void write_checkpoint_fields(ByteWriter& w, GPT<T>& model, const AdamWConfig* adamw,
                             std::int64_t adamw_steps, const MomentReader<T>& moments,
                             const std::vector<std::string>& vocabulary,
                             const TrainingState& training, std::uint64_t total_size) {
    w.put_array(kCheckpointMagic, 8);
    w.put(kCheckpointVersion);
    w.put(static_cast<std::uint32_t>(sizeof(T)));
    w.put(total_size);
    w.put(checkpoint_element_type<T>());
    const GPTConfig& c = model.config();
    for (std::int64_t v : {c.block_size, c.vocab_size, c.n_layer, c.n_head, c.n_embd}) w.put(v);
    w.put(c.dropout);
    w.put(static_cast<std::uint8_t>(c.bias));
    w.put(static_cast<std::uint8_t>(c.dtype));
    w.put(static_cast<std::uint32_t>(vocabulary.empty() ? 0 : 1));
    w.put(static_cast<std::uint64_t>(vocabulary.size()));
    for (const std::string& s : vocabulary) {
        w.put(static_cast<std::uint32_t>(s.size()));
        w.put_array(s.data(), s.size());
    }
    w.put(training.iter);
    w.put(training.best_val_loss);
    w.put_state(model.dropout_generator().state());
    w.put_state(training.data_rng);
    const std::int64_t n = model.parameters().size();
    w.put(static_cast<std::uint64_t>(n));
    w.put_array(model.parameters().data(), static_cast<std::size_t>(n));
    w.put(static_cast<std::uint8_t>(adamw != nullptr));
    if (adamw == nullptr) return;
    for (double v : {adamw->beta1, adamw->beta2, adamw->eps, adamw->weight_decay}) w.put(v);
    w.put(adamw_steps);
    std::vector<T> piece(static_cast<std::size_t>(w.counting() ? 0 : std::min(n, kCheckpointPiece)));
    for (int which = 0; which < 2; ++which) {
        for (std::int64_t begin = 0; begin < n; begin += kCheckpointPiece) {
            const std::int64_t count = std::min(kCheckpointPiece, n - begin);
            if (!w.counting()) moments(which, begin, count, piece.data());
            w.put_array(piece.data(), static_cast<std::size_t>(count));
        }
    }
}

}  // namespace detail

/// Saves the model, the optimizer's settings, steps and moments (when adamw is not null; the
/// moments come from `moments`), the tokenizer's symbols and the training state to path, writing
/// as it goes: besides the model, memory holds one piece of the moments.
template <class T>
void save_checkpoint(const std::string& path, GPT<T>& model, const AdamWConfig* adamw,
                     std::int64_t adamw_steps, const MomentReader<T>& moments,
                     const std::vector<std::string>& vocabulary,
                     const TrainingState& training = {}) {
    detail::ByteWriter counter;
    detail::write_checkpoint_fields(counter, model, adamw, adamw_steps, moments, vocabulary,
                                    training, 0);
    const std::uint64_t total = counter.size() + sizeof(std::uint64_t);
    write_file_atomically(
        path,
        [&](const WriteBytes& out) {
            detail::ByteWriter w(out);
            detail::write_checkpoint_fields(w, model, adamw, adamw_steps, moments, vocabulary,
                                            training, total);
            w.put(w.hash());
            w.flush();
        },
        "checkpoint");
}

/// Saves the model (and optimizer state when given, and the tokenizer's symbols) to path.
template <class T>
void save_checkpoint(const std::string& path, GPT<T>& model,
                     const std::type_identity_t<AdamW<T>>* optimizer,
                     const std::vector<std::string>& vocabulary,
                     const TrainingState& training = {}) {
    if (optimizer != nullptr && optimizer->shard_end() - optimizer->shard_begin() !=
                                    model.parameters().size()) {
        throw std::invalid_argument(
            "save_checkpoint: the optimizer holds a shard of the moments (ZeRO-1); pass a "
            "MomentReader that collects them instead");
    }
    const MomentReader<T> moments = [&](int which, std::int64_t begin, std::int64_t count,
                                        T* out) {
        const std::vector<T>& from = which == 0 ? optimizer->m() : optimizer->v();
        std::copy(from.begin() + begin, from.begin() + begin + count, out);
    };
    save_checkpoint(path, model, optimizer != nullptr ? &optimizer->config() : nullptr,
                    optimizer != nullptr ? optimizer->steps() : 0, moments, vocabulary, training);
}

/// A checkpoint kept beside the previous one, in "<path>.pending", until the training step after
/// it has shown that its weights are sound, then renamed over it. One update can make the
/// weights enormous yet finite: the evaluation right after it may still look fine and save them,
/// and only the next step's loss or gradient norm is NaN. Training stages each checkpoint here,
/// commits it once the following step produced a finite loss and gradient norm, and discards it
/// when that step diverges, so <path> is always the last checkpoint that was followed by a good
/// step. Staging streams to disk like save_checkpoint, so it holds no copy of the model.
class PendingCheckpoint {
public:
    /// Writes the checkpoint of this moment to "<path>.pending" (replacing one staged before).
    template <class T>
    void stage(const std::string& path, GPT<T>& model,
               const std::type_identity_t<AdamW<T>>* optimizer,
               const std::vector<std::string>& vocabulary, const TrainingState& training) {
        path_ = path;
        staged_ = false;
        save_checkpoint(pending_path(), model, optimizer, vocabulary, training);
        staged_ = true;
    }
    /// The same with the moments from a MomentReader (an optimizer sharded over ranks).
    template <class T>
    void stage(const std::string& path, GPT<T>& model, const AdamWConfig* adamw,
               std::int64_t adamw_steps, const MomentReader<T>& moments,
               const std::vector<std::string>& vocabulary, const TrainingState& training) {
        path_ = path;
        staged_ = false;
        save_checkpoint(pending_path(), model, adamw, adamw_steps, moments, vocabulary, training);
        staged_ = true;
    }
    bool pending() const { return staged_; }
    /// Renames the staged checkpoint over <path> (durably, atomically); false if none is staged.
    bool commit() {
        if (!staged_) return false;
        staged_ = false;
        rename_file_durably(pending_path(), path_, "checkpoint");
        return true;
    }
    /// Forgets the staged checkpoint: <path> stays the previous one.
    void discard() {
        if (!staged_) return;
        staged_ = false;
        std::error_code ignored;
        std::filesystem::remove(pending_path(), ignored);
    }
    std::string pending_path() const { return path_ + ".pending"; }

private:
    std::string path_;
    bool staged_ = false;
};

/// Whether reading a checkpoint loads AdamW's moments (to resume training) or passes over them
/// (sampling: they are twice the size of the weights).
enum class OptimizerState { load, skip };

namespace detail {

/// Where read_checkpoint_fields puts the weights and moments: into the Checkpoint's vectors
/// (both null), straight into a model's parameters and an optimizer's range of the moments, or
/// nowhere (header_only: it stops before the weights).
template <class T>
struct CheckpointTargets {
    bool header_only = false;
    GPT<T>* model = nullptr;
    AdamW<T>* optimizer = nullptr;
    bool skip_moments = false;  // OptimizerState::skip: pass over them, has_optimizer = false
};

// Reads all of m, then all of v, a piece at a time, keeping the optimizer's range of each.
template <class T>
void read_moment_shard(ByteReader& r, std::int64_t n, AdamW<T>& optimizer) {
    if (optimizer.shard_end() > n) r.fail("the optimizer's shard lies beyond the moments");
    std::vector<T> piece(static_cast<std::size_t>(std::min(n, kCheckpointPiece)));
    for (std::vector<T>* into : {&optimizer.m(), &optimizer.v()}) {
        for (std::int64_t begin = 0; begin < n; begin += kCheckpointPiece) {
            const std::int64_t count = std::min(kCheckpointPiece, n - begin);
            r.get_array(piece.data(), static_cast<std::size_t>(count), "optimizer");
            const std::int64_t lo = std::max(begin, optimizer.shard_begin());
            const std::int64_t hi = std::min(begin + count, optimizer.shard_end());
            if (lo < hi)
                std::copy(piece.begin() + (lo - begin), piece.begin() + (hi - begin),
                          into->begin() + (lo - optimizer.shard_begin()));
        }
    }
}

/// The checks before parsing, on the file's first 24 bytes (`start`; `size` below 32 when the
/// file is shorter) and its size; returns the format version. The caller checks the hash, then
/// the element size (check_element_size), in that order.
template <class T>
std::uint32_t check_checkpoint_start(const unsigned char* start, std::uint64_t size,
                                     const std::string& path) {
    const std::vector<unsigned char> none;
    ByteReader header(none, 0, path);
    if (size < 32 || std::memcmp(start, kCheckpointMagic, 8) != 0) {
        header.fail("not a nanogpt checkpoint (bad magic or too short)");
    }
    std::uint32_t version = 0, element_bytes = 0;
    std::uint64_t total_size = 0;
    std::memcpy(&version, start + 8, 4);
    std::memcpy(&element_bytes, start + 12, 4);
    std::memcpy(&total_size, start + 16, 8);
    if (version < 1 || version > kCheckpointVersion) {
        header.fail("format version " + std::to_string(version) + ", this build reads versions 1 to " +
                    std::to_string(kCheckpointVersion));
    }
    if (total_size != size) {
        header.fail("file has " + std::to_string(size) + " bytes but its header says " +
                    std::to_string(total_size) + (total_size > size ? " (truncated)" : ""));
    }
    return version;
}

template <class T>
void check_element_size(const unsigned char* start, const std::string& path) {
    std::uint32_t element_bytes = 0;
    std::memcpy(&element_bytes, start + 12, 4);
    if (element_bytes != sizeof(T)) {
        throw std::runtime_error("checkpoint '" + path + "': stores " +
                                 std::to_string(element_bytes) + "-byte elements, expected " +
                                 std::to_string(sizeof(T)));
    }
}

/// The fields after the checks (the element size and type first), from a reader at the file's
/// start whose end is the hash.
template <class T>
Checkpoint<T> read_checkpoint_fields(ByteReader& r, std::uint32_t version, const std::string& path,
                                     const CheckpointTargets<T>& to) {
    (void)r.get<std::uint64_t>("magic");
    (void)r.get<std::uint64_t>("version");
    (void)r.get<std::uint64_t>("size");
    if (version >= 2) {
        const auto type = r.get<std::uint32_t>("element type");
        if (type != checkpoint_element_type<T>()) {
            r.fail("element type " + std::to_string(type) + ", expected " +
                   std::to_string(checkpoint_element_type<T>()) + " (0 float32, 1 float64)");
        }
    }
    Checkpoint<T> ck;
    ck.config.block_size = r.get<std::int64_t>("config");
    ck.config.vocab_size = r.get<std::int64_t>("config");
    ck.config.n_layer = r.get<std::int64_t>("config");
    ck.config.n_head = r.get<std::int64_t>("config");
    ck.config.n_embd = r.get<std::int64_t>("config");
    ck.config.dropout = r.get<double>("config");
    ck.config.bias = r.get<std::uint8_t>("config") != 0;
    if (version >= 3) {  // older files were written by float32-only builds
        const auto dtype = r.get<std::uint8_t>("config");
        if (dtype > 1) r.fail("dtype " + std::to_string(dtype) + " (0 float32, 1 bfloat16)");
        ck.config.dtype = static_cast<Dtype>(dtype);
    }
    validate_loaded_config(ck.config, "checkpoint '" + path + "'");
    const auto kind = r.get<std::uint32_t>("tokenizer");
    const auto symbols = r.get<std::uint64_t>("tokenizer");
    // Each symbol takes at least 5 bytes (length and one byte), so this bounds the loop.
    if (kind > 1 || symbols > r.remaining() / 5) r.fail("corrupt tokenizer section");
    ck.vocabulary.reserve(static_cast<std::size_t>(symbols));
    for (std::uint64_t i = 0; i < symbols; ++i) {
        const auto len = r.get<std::uint32_t>("tokenizer");
        if (len == 0 || len > 4) r.fail("corrupt tokenizer symbol");
        std::string s(len, '\0');
        r.get_array(s.data(), len, "tokenizer");
        ck.vocabulary.push_back(std::move(s));
    }
    if (!ck.vocabulary.empty() &&
        static_cast<std::int64_t>(ck.vocabulary.size()) != ck.config.vocab_size) {
        r.fail("tokenizer has " + std::to_string(ck.vocabulary.size()) +
               " symbols but vocab_size is " + std::to_string(ck.config.vocab_size));
    }
    ck.training.iter = r.get<std::int64_t>("training state");
    ck.training.best_val_loss = r.get<double>("training state");
    ck.dropout_rng = r.get_state("training state");
    ck.training.data_rng = r.get_state("training state");
    const auto n = r.get<std::uint64_t>("weights");
    const auto expected = static_cast<std::uint64_t>(ck.config.num_parameters());
    if (n != expected) {
        r.fail("holds " + std::to_string(n) + " weights, the configuration needs " +
               std::to_string(expected));
    }
    // Allocate only what the file holds: the weights and, when present, the two moments.
    if (n > r.remaining() / sizeof(T)) {
        r.fail("truncated in weights: " + std::to_string(n) + " weights need " +
               std::to_string(n * sizeof(T)) + " bytes, " + std::to_string(r.remaining()) +
               " remain");
    }
    if (to.model != nullptr) {  // the architecture must match; the dtype need not
        GPTConfig architecture = to.model->config();
        architecture.dtype = ck.config.dtype;
        if (!(architecture == ck.config))
            r.fail("the model's configuration does not match the checkpoint's");
    }
    if (to.header_only) return ck;
    T* weights = to.model != nullptr ? to.model->parameters().data() : nullptr;
    if (weights == nullptr) {
        ck.weights.resize(static_cast<std::size_t>(n));
        weights = ck.weights.data();
    }
    // Marked before the read: one that fails midway has changed some weights already.
    if (to.model != nullptr) to.model->parameters().mark_changed();
    r.get_array(weights, n, "weights");
    ck.has_optimizer = r.get<std::uint8_t>("optimizer") != 0;
    if (ck.has_optimizer) {
        ck.adamw.beta1 = r.get<double>("optimizer");
        ck.adamw.beta2 = r.get<double>("optimizer");
        ck.adamw.eps = r.get<double>("optimizer");
        ck.adamw.weight_decay = r.get<double>("optimizer");
        ck.adamw_steps = r.get<std::int64_t>("optimizer");
        if (n > r.remaining() / sizeof(T) / 2) r.fail("truncated in optimizer");
        if (to.optimizer != nullptr) {
            read_moment_shard(r, static_cast<std::int64_t>(n), *to.optimizer);
            to.optimizer->set_steps(ck.adamw_steps);
        } else if (to.skip_moments || to.model != nullptr) {  // not wanted: never in memory
            r.skip_array<T>(2 * static_cast<std::size_t>(n), "optimizer");
            if (to.skip_moments) ck.has_optimizer = false;  // so restore() leaves an optimizer alone
        } else {
            ck.adamw_m.resize(static_cast<std::size_t>(n));
            ck.adamw_v.resize(static_cast<std::size_t>(n));
            r.get_array(ck.adamw_m.data(), n, "optimizer");
            r.get_array(ck.adamw_v.data(), n, "optimizer");
        }
    }
    if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected trailing bytes");
    return ck;
}

/// The stored hash and the hash of the bytes before it, reading the file a piece at a time.
inline bool checkpoint_file_hash_matches(std::FILE* file, std::uint64_t body, const std::string& path) {
    // Small: it is allocated before any field is checked (a hostile file gets no large buffer).
    std::vector<unsigned char> buffer(std::size_t{1} << 15);
    std::uint64_t hash = detail::kFnv1aStart;
    for (std::uint64_t done = 0; done < body;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), body - done));
        if (std::fread(buffer.data(), 1, n, file) != n)
            throw std::runtime_error("checkpoint '" + path + "': cannot read file");
        hash = fnv1a(buffer.data(), n, hash);
        done += n;
    }
    std::uint64_t stored = 0;
    if (std::fread(&stored, 1, sizeof stored, file) != sizeof stored)
        throw std::runtime_error("checkpoint '" + path + "': cannot read file");
    return stored == hash;
}

// Checks the file (size, magic, version, hash: one pass) and reads its fields (a second pass)
// into `to`, never holding the file in memory.
template <class T>
Checkpoint<T> read_checkpoint_file(const std::string& path, const CheckpointTargets<T>& to) {
    struct Close {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    const std::string who = "checkpoint '" + path + "'";
    errno = 0;
    std::unique_ptr<std::FILE, Close> file(std::fopen(path.c_str(), "rb"));
    if (!file) io_fail(who, "cannot open file", errno);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) io_fail(who, "not a regular file", 0);
    const std::uint64_t size = std::filesystem::file_size(path, ec);
    if (ec) io_fail(who, "cannot read file", 0);
    unsigned char start[24] = {};
    const std::size_t got = std::fread(start, 1, sizeof start, file.get());
    const std::uint32_t version = check_checkpoint_start<T>(start, got < sizeof start ? got : size, path);
    std::rewind(file.get());
    const std::uint64_t body = size - sizeof(std::uint64_t);
    if (!to.header_only && !checkpoint_file_hash_matches(file.get(), body, path))
        throw std::runtime_error("checkpoint '" + path + "': checksum mismatch (file is corrupt)");
    check_element_size<T>(start, path);
    std::rewind(file.get());
    ByteReader r(file.get(), static_cast<std::size_t>(body), path);
    return read_checkpoint_fields<T>(r, version, path, to);
}

}  // namespace detail

/// Validates and decodes the bytes of a checkpoint file held in memory; `path` names it in
/// errors.
template <class T>
Checkpoint<T> parse_checkpoint(const std::vector<unsigned char>& bytes, const std::string& path,
                               OptimizerState optimizer = OptimizerState::load) {
    const std::uint32_t version = detail::check_checkpoint_start<T>(bytes.data(), bytes.size(), path);
    const std::size_t body = bytes.size() - sizeof(std::uint64_t);
    std::uint64_t stored_hash = 0;
    std::memcpy(&stored_hash, bytes.data() + body, sizeof(stored_hash));
    if (stored_hash != detail::fnv1a(bytes.data(), body))
        throw std::runtime_error("checkpoint '" + path + "': checksum mismatch (file is corrupt)");
    detail::check_element_size<T>(bytes.data(), path);
    detail::ByteReader r(bytes, body, path);
    detail::CheckpointTargets<T> to;
    to.skip_moments = optimizer == OptimizerState::skip;
    return detail::read_checkpoint_fields<T>(r, version, path, to);
}

/// Reads and validates a checkpoint written by save_checkpoint (any version up to
/// kCheckpointVersion) with the same element type.
/// With OptimizerState::skip the moments are passed over (sampling needs only the weights).
template <class T>
Checkpoint<T> load_checkpoint(const std::string& path,
                              OptimizerState optimizer = OptimizerState::load) {
    detail::CheckpointTargets<T> to;
    to.skip_moments = optimizer == OptimizerState::skip;
    return detail::read_checkpoint_file<T>(path, to);
}

/// The fields before the weights (configuration, vocabulary, training state): what a program
/// needs to build the model that load_checkpoint_into then fills. Checks the size, magic and
/// version and every field it reads, but not the hash: that would read the whole file, and
/// load_checkpoint_into checks it.
template <class T>
Checkpoint<T> load_checkpoint_header(const std::string& path) {
    return detail::read_checkpoint_file<T>(path, {true, nullptr, nullptr, false});
}

/// Reads the weights straight into `model` (whose configuration must match) and, when the file
/// has them and optimizer is not null, the moments of the optimizer's range (its shard under
/// ZeRO-1) and its steps; returns the other fields (no weights or moments). The dropout
/// generator's state is restored too. Holds at most one piece of the moments besides.
template <class T>
Checkpoint<T> load_checkpoint_into(const std::string& path, GPT<T>& model, AdamW<T>* optimizer) {
    Checkpoint<T> ck = detail::read_checkpoint_file<T>(path, {false, &model, optimizer, false});
    model.dropout_generator().set_state(ck.dropout_rng);
    return ck;
}

}  // namespace nanogpt
