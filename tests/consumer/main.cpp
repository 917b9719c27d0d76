// A downstream program: one include, one tiny model. If this builds and prints, the package
// (include path, C++20, OpenMP) reaches consumers intact.
#include <nanogpt.hpp>

#include <iostream>  // std::cout

int main() {
    nanogpt::GPTConfig config = nanogpt::GPTConfig::tiny();
    nanogpt::GPT<float> model(config, /*seed=*/1);
    std::cout << "nanogpt consumer OK: " << model.num_parameters() << " parameters\n";
}
