// Precompiled header of the LibTorch targets (wb_core, torch tests). Nothing Qt.
#pragma once
#include <torch/torch.h>
