// args.hpp — the examples' command-line parser: `--key=value` or `--key value`, typed getters
// with defaults, and an error that names any unknown or ill-typed option. Not part of the library.
#pragma once

#include <cstdint>    // std::int64_t
#include <exception>  // std::exception
#include <iostream>   // std::cout, std::cerr
#include <map>        // std::map
#include <set>        // std::set
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::stoll, std::stod

namespace examples {

class Args {
public:
    Args(int argc, char** argv) {
        for (int i = 1; i < argc; ++i) {
            std::string a = argv[i];
            if (a == "-h" || a == "--help") {
                help_ = true;
                continue;
            }
            if (a.rfind("--", 0) != 0)
                throw std::invalid_argument("unexpected argument '" + a +
                                            "' (options start with --)");
            a = a.substr(2);
            const auto eq = a.find('=');
            if (eq != std::string::npos) {
                values_[a.substr(0, eq)] = a.substr(eq + 1);
            } else if (i + 1 < argc) {
                values_[a] = argv[++i];
            } else {
                throw std::invalid_argument("option --" + a + " needs a value");
            }
        }
    }

    bool help() const { return help_; }
    bool has(const std::string& key) const { return values_.count(key) != 0; }

    std::string get(const std::string& key, const std::string& fallback) {
        known_.insert(key);
        const auto it = values_.find(key);
        return it == values_.end() ? fallback : it->second;
    }
    std::int64_t get_int(const std::string& key, std::int64_t fallback) {
        const std::string v = get(key, std::to_string(fallback));
        std::size_t used = 0;
        std::int64_t x = 0;
        try {
            x = std::stoll(v, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != v.size() || v.empty())
            throw std::invalid_argument("option --" + key + ": '" + v + "' is not an integer");
        return x;
    }
    double get_double(const std::string& key, double fallback) {
        const std::string v = get(key, std::to_string(fallback));
        std::size_t used = 0;
        double x = 0;
        try {
            x = std::stod(v, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != v.size() || v.empty())
            throw std::invalid_argument("option --" + key + ": '" + v + "' is not a number");
        return x;
    }
    bool get_bool(const std::string& key, bool fallback) {
        const std::string v = get(key, fallback ? "true" : "false");
        if (v == "true" || v == "1" || v == "True") return true;
        if (v == "false" || v == "0" || v == "False") return false;
        throw std::invalid_argument("option --" + key + ": '" + v + "' is not true or false");
    }

    /// Call after every get: an option nobody asked for is a typo, so it is an error.
    void reject_unknown() const {
        for (const auto& [key, value] : values_) {
            if (known_.count(key) == 0)
                throw std::invalid_argument("unknown option --" + key + " (see --help)");
        }
    }

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> known_;
    bool help_ = false;
};

/// The whole main() of a simple example: parses the options, prints `help` for --help,
/// otherwise returns run(args); any exception becomes "error: <message>" and exit status 1.
template <class Run>
int run_main(int argc, char** argv, const char* help, const Run& run) {
    try {
        Args args(argc, argv);
        if (args.help()) {
            std::cout << help;
            return 0;
        }
        return run(args);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace examples
