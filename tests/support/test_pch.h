// PCH of the LibTorch tests: LibTorch before Qt, so Qt's keywords never reach it.
#pragma once
#include <torch/torch.h>
#include <QtTest>
