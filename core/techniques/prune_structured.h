// Structured pruning of Gpt2: whole attention heads and whole MLP neurons, ranked by
// weight-norm importance, removed so the matrices (and, where HF's config can say it,
// config.n_inner) really shrink and the model really gets faster; plus "masked" twins
// that zero the same units in place, the reference a shrunken model must match.
// Not here: unstructured / N:M masks (prune.h), activation-based importance.
#pragma once

#include <cstdint>
#include <vector>

#include "core/model/gpt2.h"

namespace wb {

// Unit lists per layer: [n_layer][indices], ascending.
using LayerUnits = std::vector<std::vector<int64_t>>;

// Head importance: L2 norm of everything the head owns (its q, k, v columns of
// c_attn with biases, and its rows of c_proj). [n_layer][heads].
std::vector<std::vector<double>> headImportance(Gpt2& model);
// Zeroes the given heads' c_proj rows: the model computes exactly what the pruned
// model computes, but keeps its shapes (the reference for structural pruning).
void maskHeads(Gpt2& model, const LayerUnits& pruneHeads);
// Removes the given heads per layer (physically shrinking c_attn and c_proj); GPT-2's
// config has one n_head, so the per-layer counts live in the attention modules and
// config.n_head keeps the original (largest) count.
void removeHeads(Gpt2& model, const LayerUnits& pruneHeads);
// The `perLayer` least important heads of every layer (same number in each layer, so
// the model stays rectangular), ascending head indices.
LayerUnits leastImportantHeads(Gpt2& model, int64_t perLayer);

// Neuron importance: ‖c_fc column j with its bias‖ · ‖c_proj row j‖ — the product,
// because a neuron whose input or output weights are tiny contributes little however
// large the other side is. [n_layer][neurons].
std::vector<std::vector<double>> neuronImportance(Gpt2& model);
// Zeroes the given neurons' c_proj rows (shapes kept): the masked reference.
void maskNeurons(Gpt2& model, const LayerUnits& pruneNeurons);
// Removes the given neurons per layer (shrinking c_fc's columns and c_proj's rows). When
// every layer ends with the same count, config.n_inner becomes that count, so the model
// still saves and loads as a plain HF GPT-2 folder.
void removeNeurons(Gpt2& model, const LayerUnits& pruneNeurons);
// The `perLayer` least important neurons of every layer, ascending indices.
LayerUnits leastImportantNeurons(Gpt2& model, int64_t perLayer);

}  // namespace wb
