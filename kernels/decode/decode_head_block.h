// The attention block's one-block-a-head launch (decode_head_block.cu), which
// wbDecodeAttentionBlock (decode_attention_block.cu) calls for params.headBlock after its
// common checks. Internal to kernels/decode; host code only.
#pragma once

#include <cuda_runtime.h>

#include "kernels/decode/decode.h"

namespace wbk {

WbStatus launchHeadBlock(const WbDecodeAttentionBlockParams& ab, cudaStream_t stream);

}  // namespace wbk
