// Argument checks shared by the flash forward and backward entry points: sizes the
// kernels take, and per-operand alignment/stride rules (16-byte rows for cp.async).
#pragma once

#include <cstdint>

#include "kernels/common/status_internal.h"

namespace wbk {

inline WbStatus checkShape(const char* op, int batch, int heads, int tq, int tk, int d, int causal) {
  if (batch < 0 || heads < 0 || tq < 0 || tk < 0)
    return fail(WB_STATUS_INVALID_ARGUMENT, "%s: negative size (B=%d H=%d Tq=%d Tk=%d)", op, batch, heads, tq, tk);
  if (d != 64 && d != 128)
    return fail(WB_STATUS_UNSUPPORTED, "%s: head dim %d has no kernel (64 or 128)", op, d);
  if (static_cast<int64_t>(batch) * heads > 65535)
    return fail(WB_STATUS_INVALID_ARGUMENT, "%s: batch * heads = %lld exceeds 65535", op,
                static_cast<long long>(batch) * heads);
  if (causal && tk < tq)
    return fail(WB_STATUS_INVALID_ARGUMENT,
                "%s: causal attention needs Tk >= Tq (bottom-right aligned), got Tq=%d Tk=%d", op, tq, tk);
  if (tq > 0 && tk == 0) return fail(WB_STATUS_INVALID_ARGUMENT, "%s: no keys (Tk=0) for %d queries", op, tq);
  return WB_STATUS_OK;
}

inline WbStatus checkOperand(const char* op, const char* name, const void* ptr, const int64_t* stride) {
  if (!ptr) return fail(WB_STATUS_INVALID_ARGUMENT, "%s: %s is NULL", op, name);
  if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0)
    return fail(WB_STATUS_INVALID_ARGUMENT, "%s: %s is not 16-byte aligned", op, name);
  for (int i = 0; i < 3; ++i)
    if (stride[i] % 8 != 0 || stride[i] < 0)
      return fail(WB_STATUS_INVALID_ARGUMENT, "%s: %s stride[%d] = %lld is not a non-negative multiple of 8", op,
                  name, i, static_cast<long long>(stride[i]));
  return WB_STATUS_OK;
}

}  // namespace wbk
