/**
 * The Deno FFI symbol table of ffi/bridge.h. One entry per function of the
 * header, in its order; tests/bridge_abi.test.ts holds this table against
 * the header and against the symbols each built library exports.
 *
 * Every fallible call ends with (err: buffer, err_cap: u64).
 */

const ERR = ["buffer", "u64"] as const;

export const BRIDGE_SYMBOLS = {
  mb_abi_version: { parameters: [], result: "u32" },

  mb_device_open: { parameters: ["buffer", "buffer", ...ERR], result: "i32" },
  mb_device_info: { parameters: ["pointer", "buffer", "u64", ...ERR], result: "i32" },
  mb_device_close: { parameters: ["pointer"], result: "void" },

  mb_pipeline_compile: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "buffer", ...ERR],
    result: "i32",
    // Compiling runs a compiler (sim) or the Metal compiler: keep the event loop live.
    nonblocking: true,
  },
  mb_pipeline_facts_get: { parameters: ["pointer", "buffer", ...ERR], result: "i32" },
  mb_pipeline_free: { parameters: ["pointer"], result: "void" },

  mb_buffer_new: { parameters: ["pointer", "u64", "buffer", ...ERR], result: "i32" },
  mb_buffer_write: {
    parameters: ["pointer", "u64", "buffer", "u64", ...ERR],
    result: "i32",
  },
  mb_buffer_read: {
    parameters: ["pointer", "u64", "buffer", "u64", ...ERR],
    result: "i32",
  },
  mb_buffer_free: { parameters: ["pointer"], result: "void" },

  mb_command_new: { parameters: ["pointer", "buffer", ...ERR], result: "i32" },
  mb_command_set_pipeline: { parameters: ["pointer", "pointer", ...ERR], result: "i32" },
  mb_command_set_buffer: {
    parameters: ["pointer", "u32", "pointer", "u64", ...ERR],
    result: "i32",
  },
  mb_command_set_bytes: {
    parameters: ["pointer", "u32", "buffer", "u64", ...ERR],
    result: "i32",
  },
  mb_command_set_threadgroup_memory: {
    parameters: ["pointer", "u32", "u64", ...ERR],
    result: "i32",
  },
  mb_command_dispatch: {
    parameters: ["pointer", "u32", "u32", "u32", "u32", "u32", "u32", "u32", ...ERR],
    result: "i32",
  },
  mb_command_end_launch: { parameters: ["pointer", ...ERR], result: "i32" },
  mb_command_run: {
    parameters: ["pointer", "u32", "u32", "buffer", "buffer", ...ERR],
    result: "i32",
    // Kernels may run for seconds (or hang until the time limit).
    nonblocking: true,
  },
  mb_command_capture: {
    parameters: ["pointer", "buffer", ...ERR],
    result: "i32",
    nonblocking: true,
  },
  mb_command_free: { parameters: ["pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

export type BridgeSymbols = typeof BRIDGE_SYMBOLS;
