// tape_print.hpp — the tape made visible: what a forward pass recorded, as a listing in
// execution order (op, output shape, the nodes it read, activation bytes kept) and as a Graphviz
// DOT graph, micrograd's draw_dot for a tape of array ops. Leaves (parameters, token ids) appear
// under their names when given, e.g. parameter_names(model.parameters()). Read it before
// backward(), which consumes the nodes. examples/graph.cpp prints a small GPT's tape.
// Builds on tape.hpp and parameters.hpp; read next: optim.hpp.
#pragma once

#include <cstddef>  // std::size_t
#include <cstdint>  // std::int32_t, std::int64_t
#include <cstdio>   // std::snprintf
#include <map>      // std::map
#include <ostream>  // std::ostream
#include <string>   // std::string, std::to_string
#include <utility>  // std::move
#include <vector>   // std::vector

#include <nanogpt/parameters.hpp>
#include <nanogpt/tape.hpp>

namespace nanogpt {

/// Display names of leaves, by the address of their data.
using LeafNames = std::map<const void*, std::string>;

/// Every parameter of `params` under its GPT-2 name and shape, e.g. "h.0.ln_1.weight [768]".
template <class T>
LeafNames parameter_names(const Parameters<T>& params) {
    LeafNames names;
    for (const ParameterInfo& info : params.infos())
        names[params.data() + info.offset] = info.name + " " + info.shape.to_string();
    return names;
}

namespace detail {

inline std::string dims_to_string(const Tape::Entry& e) {
    std::string s = "[";
    for (int i = 0; i < e.ndim; ++i) {
        if (i > 0) s += ", ";
        s += std::to_string(e.dims[static_cast<std::size_t>(i)]);
    }
    s += ']';
    return s;
}

/// prefix followed by i, e.g. "n12". (Appending, not "n" + std::to_string(i): g++ 12 -O3
/// reports a false -Wrestrict on that form.)
inline std::string numbered(const char* prefix, std::int64_t i) {
    std::string s = prefix;
    s += std::to_string(i);
    return s;
}

inline std::string bytes_to_string(std::size_t bytes) {
    char text[32];
    if (bytes < 1024)
        std::snprintf(text, sizeof text, "%zu B", bytes);
    else if (bytes < std::size_t{1} << 20)
        std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024.0);
    else
        std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / 1048576.0);
    return text;
}

/// Names leaves: the caller's name, else "leafK" in order of first use.
class LeafNamer {
public:
    struct Leaf {
        std::string label;  // what the listing shows
        std::string id;     // the DOT node: "leafK"
        bool first;         // seen for the first time
    };
    explicit LeafNamer(const LeafNames& names) : names_(names) {}
    Leaf name(const void* address) {
        const auto [it, first] = ids_.emplace(address, static_cast<int>(ids_.size()));
        std::string id = numbered("leaf", it->second);
        const auto named = names_.find(address);
        return {named != names_.end() ? named->second : id, std::move(id), first};
    }
    std::size_t count() const { return ids_.size(); }

private:
    const LeafNames& names_;
    std::map<const void*, int> ids_;
};

/// A DOT string literal's contents: quotes and backslashes escaped.
inline std::string dot_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

}  // namespace detail

/// One line per recorded op: id, op, output shape, inputs ("#id" for an earlier op's output, a
/// leaf's name otherwise) and the activation bytes the op added to the graph; then the totals.
inline void print_tape(std::ostream& os, const LeafNames& names = {},
                       const Tape& tape = Tape::current()) {
    const std::vector<Tape::Entry> entries = tape.listing();
    detail::LeafNamer leaves(names);
    char line[160];
    std::snprintf(line, sizeof line, "%5s  %-22s %-20s %10s  %s\n", "id", "op", "output", "kept",
                  "inputs");
    os << line;
    std::size_t total = 0;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const Tape::Entry& e = entries[i];
        std::string inputs;
        for (const Tape::Entry::Input& in : e.inputs) {
            if (!inputs.empty()) inputs += ", ";
            if (in.node >= 0) {
                inputs += detail::numbered("#", in.node);
            } else {
                inputs += leaves.name(in.address).label;
            }
        }
        std::snprintf(line, sizeof line, "%5zu  %-22s %-20s %10s  ", i, e.name,
                      detail::dims_to_string(e).c_str(),
                      detail::bytes_to_string(e.activation_bytes).c_str());
        os << line << inputs << "\n";
        total += e.activation_bytes;
    }
    os << entries.size() << " ops, " << leaves.count() << " leaves, "
       << detail::bytes_to_string(total) << " of activations kept for the backward pass\n";
}

/// The same graph in Graphviz's DOT language: a box per op (id, op, shape, bytes), an ellipse
/// per leaf, an edge from every input to the op that reads it. Render with `dot -Tsvg`.
inline void write_dot(std::ostream& os, const LeafNames& names = {},
                      const Tape& tape = Tape::current()) {
    const std::vector<Tape::Entry> entries = tape.listing();
    detail::LeafNamer leaves(names);
    os << "digraph tape {\n"
          "  rankdir=TB;\n"
          "  node [fontname=\"Helvetica\", fontsize=10];\n";
    std::string edges;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const Tape::Entry& e = entries[i];
        const std::string id = detail::numbered("n", static_cast<std::int64_t>(i));
        os << "  " << id << " [shape=box, label=\"#" << i << " " << e.name << "\\n"
           << detail::dims_to_string(e) << "\\n"
           << detail::bytes_to_string(e.activation_bytes) << "\"];\n";
        for (const Tape::Entry::Input& in : e.inputs) {
            std::string from;
            if (in.node >= 0) {
                from = detail::numbered("n", in.node);
            } else {
                const detail::LeafNamer::Leaf leaf = leaves.name(in.address);
                if (leaf.first) {
                    os << "  " << leaf.id << " [shape=ellipse, label=\""
                       << detail::dot_escape(leaf.label) << "\"];\n";
                }
                from = leaf.id;
            }
            edges += "  " + from + " -> " + id + ";\n";
        }
    }
    os << edges << "}\n";
}

}  // namespace nanogpt
