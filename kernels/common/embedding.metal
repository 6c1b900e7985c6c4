#include <metal_stdlib>
using namespace metal;

// Embedding lookup: out[s, :] = table[clamp(indices[s], 0, V - 1), :] for
// table[V, D]. One thread per 4 floats of an output row: consecutive threads
// copy consecutive 16-byte quads of the same gathered row, so both the
// gather and the store are coalesced float4 accesses; the row's index is
// read once per quad from cache. Rows whose start is not 16-byte aligned
// (D % 4 != 0) and the last partial quad copy element by element.
kernel void embedding_f32(device const int* indices [[buffer(0)]],
                          device const float* table [[buffer(1)]],
                          device float* out [[buffer(2)]],
                          constant uint& S [[buffer(3)]],
                          constant uint& V [[buffer(4)]],
                          constant uint& D [[buffer(5)]],
                          uint gid [[thread_position_in_grid]]) {
  const uint quads = (D + 3) / 4;
  const uint s = gid / quads;
  if (s >= S) return;
  const uint i = (gid - s * quads) * 4;
  const uint row = uint(clamp(indices[s], 0, int(V) - 1));
  device const float* src = table + ulong(row) * D;
  device float* dst = out + ulong(s) * D;
  if ((D & 3) == 0) {  // then i + 4 <= D and both rows are 16-byte aligned
    *reinterpret_cast<device float4*>(dst + i) = *reinterpret_cast<device const float4*>(src + i);
  } else {
    for (uint j = i; j < min(i + 4, D); ++j) dst[j] = src[j];
  }
}
