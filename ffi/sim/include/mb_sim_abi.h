/*
 * The contract between a compiled kernel (kernel.so, built from the user's
 * MSL plus a generated entry file) and the simulator runner that loads it.
 * Plain C so that both sides agree on layout; bump MB_SIM_RT_ABI on any
 * change (it is part of the kernel cache key).
 *
 * Loading a kernel.so runs none of its code: the runner reads the constant
 * `mb_kernel_info_v` and writes its services into the kernel's data, so the
 * only kernel code that ever runs is mb_kernel_run, inside the sandbox.
 */
#ifndef MB_SIM_ABI_H
#define MB_SIM_ABI_H

#define MB_SIM_RT_ABI 6
#define MB_SIM_MAX_BINDINGS 31 /* [[buffer(0..30)]], [[threadgroup(0..30)]] */
#define MB_SIM_SIMD_WIDTH 32
#define MB_SIM_MAX_THREADS 1024
#define MB_SIM_MAX_TG_VARS 64
#define MB_SIM_SLOT_BYTES 32 /* largest value a SIMD collective moves (ulong4) */

/* mb_param.min_bytes of a reference parameter: the bytes it reads, with this
 * bit set. A reference, like a pointer, may stay unbound (Metal lets a kernel
 * leave an argument it does not use unbound): using it then faults. */
#define MB_PARAM_REF_BIT 0x80000000u

/* Annotations (clang::annotate("mb", kind, value)) that the shim's attribute
 * macros put on declarations, read back from clang's AST dump. */
#define MB_PARAM_BUFFER 1
#define MB_PARAM_THREADGROUP 2
#define MB_PARAM_ATTR 3
#define MB_MARK_THREADGROUP 4 /* `threadgroup` address space on a declaration */
#define MB_PARAM_UNSUPPORTED 5
#define MB_MARK_MAX_THREADS 6       /* [[max_total_threads_per_threadgroup(n)]] */
#define MB_MARK_HOST_NAME 7         /* template [[host_name("name")]] */
#define MB_MARK_FUNCTION_CONSTANT 8 /* [[function_constant(n)]] */
#define MB_MARK_KERNEL 9            /* `kernel` / [[kernel]] */

/* Thread-position attributes (MB_PARAM_ATTR). */
#define MB_ATTR_THREAD_POSITION_IN_GRID 1
#define MB_ATTR_THREAD_POSITION_IN_THREADGROUP 2
#define MB_ATTR_THREADGROUP_POSITION_IN_GRID 3
#define MB_ATTR_THREADS_PER_THREADGROUP 4
#define MB_ATTR_THREADS_PER_GRID 5
#define MB_ATTR_THREADGROUPS_PER_GRID 6
#define MB_ATTR_THREAD_INDEX_IN_THREADGROUP 7
#define MB_ATTR_THREAD_INDEX_IN_SIMDGROUP 8
#define MB_ATTR_SIMDGROUP_INDEX_IN_THREADGROUP 9
#define MB_ATTR_THREADS_PER_SIMDGROUP 10
#define MB_ATTR_SIMDGROUPS_PER_THREADGROUP 11
#define MB_ATTR_DISPATCH_THREADS_PER_THREADGROUP 12
#define MB_ATTR_DISPATCH_SIMDGROUPS_PER_THREADGROUP 13
#define MB_ATTR_THREAD_INDEX_IN_QUADGROUP 14
#define MB_ATTR_QUADGROUP_INDEX_IN_THREADGROUP 15
#define MB_ATTR_QUADGROUPS_PER_THREADGROUP 16
#define MB_ATTR_GRID_ORIGIN 17

#ifdef __cplusplus
extern "C" {
#endif

/* Kernels compile as C++ for OpenCL (address spaces are part of the type):
 * string literals (and __builtin_FILE's) live in the constant address
 * space there, and a function
 * pointer declared in place as a struct member is refused (a clang quirk),
 * so members use the function-type typedefs below. The runner sees plain
 * C++: one flat address space, the same layout. */
#ifdef __OPENCL_CPP_VERSION__
typedef __constant char mb_cchar;
#else
typedef char mb_cchar;
#endif

#ifdef __cplusplus
#define MB_SIM_ALIGN16 alignas(16)
#else
#define MB_SIM_ALIGN16 _Alignas(16)
#endif

typedef struct mb_simd_slot mb_simd_slot;

/* Computes `out` of every lane in `lanes` (NULL for lanes not taking part)
 * from their `in` and `arg`. Supplied by the kernel side (it knows T). */
typedef void mb_simd_combine_fn(mb_simd_slot *const *lanes, unsigned active_mask);
typedef mb_simd_combine_fn *mb_simd_combine;

/* One lane's part in a SIMD-group collective; lives on the lane's stack. */
struct mb_simd_slot {
  mb_simd_combine combine;
  /* The call's place in the source: lanes at different places form
   * different collectives (divergent branches), whatever the optimizer
   * merged. */
  const mb_cchar *site_file;
  unsigned site_line, site_column;
  unsigned arg;  /* op argument: delta, lane, xor mask */
  unsigned lane; /* filled in by the runtime */
  MB_SIM_ALIGN16 unsigned char in[MB_SIM_SLOT_BYTES];
  MB_SIM_ALIGN16 unsigned char out[MB_SIM_SLOT_BYTES];
};

/* What kind of access a misaligned-access report is about. */
#define MB_ACCESS_LOAD 0
#define MB_ACCESS_STORE 1
/* An index outside a fixed-size array (thread or threadgroup): `address`
 * then carries the index, `type` the array's type ("float[8]"). */
#define MB_ACCESS_INDEX 2

typedef unsigned char *mb_arena_fn(void);
typedef void mb_barrier_fn(unsigned mem_flags, const mb_cchar *file, unsigned line,
                           unsigned column);
typedef void mb_simd_fn(mb_simd_slot *slot);
typedef void mb_misaligned_fn(const mb_cchar *file, unsigned line, unsigned column,
                              const char *type, unsigned alignment, const void *address,
                              unsigned access);
typedef unsigned mb_thread_index_fn(void);

/* Services the runner offers to kernel code (function table, no linking). */
typedef struct mb_rt {
  unsigned abi;
  /* Base of the running threadgroup's memory (static vars, then
   * [[threadgroup(n)]] allocations). */
  mb_arena_fn *threadgroup_arena;
  /* threadgroup_barrier: returns when every thread of the group arrived at
   * this barrier (the call site tells barriers apart). */
  mb_barrier_fn *barrier;
  /* A SIMD-group collective: returns when slot->out holds the result. */
  mb_simd_fn *simd;
  /* A load or store through a pointer not aligned for its type, or an index
   * outside a fixed-size array (access MB_ACCESS_INDEX): reports the fault
   * and never returns. */
  mb_misaligned_fn *misaligned;
  /* thread_index_in_threadgroup of the calling thread (simdgroup_matrix
   * functions need the caller's lane). */
  mb_thread_index_fn *thread_index;
} mb_rt;

typedef struct mb_dispatch {
  unsigned grid_threads[3];  /* threads_per_grid */
  unsigned group_threads[3]; /* dispatch_threads_per_threadgroup */
  unsigned grid_groups[3];   /* threadgroups_per_grid */
  unsigned reserved;
  void *buffers[MB_SIM_MAX_BINDINGS];
  __UINT64_TYPE__ buffer_lengths[MB_SIM_MAX_BINDINGS];
} mb_dispatch;

typedef struct mb_group {
  unsigned position[3]; /* threadgroup_position_in_grid */
  unsigned size[3];     /* threads_per_threadgroup: smaller for partial edge groups */
  unsigned char *threadgroup_args[MB_SIM_MAX_BINDINGS];
} mb_group;

typedef struct mb_thread {
  unsigned position[3]; /* thread_position_in_threadgroup */
  unsigned index;       /* thread_index_in_threadgroup */
  unsigned done;        /* set by mb_kernel_run when the thread returned */
} mb_thread;

/* The threads of one group that mb_kernel_run starts, one after another:
 * threads[order[next]], next < count (order NULL: index order). A thread
 * that blocks at a barrier or SIMD-group function leaves the loop parked on
 * its fiber; the scheduler runs the rest from another one. */
typedef struct mb_cursor {
  unsigned next, count;
  const unsigned short *order;
  mb_thread *threads;
  mb_thread *current; /* the simulated thread running now */
} mb_cursor;

/* One kernel parameter's binding. */
typedef struct mb_param {
  unsigned short kind;  /* MB_PARAM_* */
  unsigned short index; /* buffer/threadgroup index or MB_ATTR_* */
  unsigned min_bytes;   /* bytes a reference parameter reads (0 for pointers) */
  const mb_cchar *name; /* the parameter's name in the source */
} mb_param;

/* A kernel-scope threadgroup variable (a section of kernel.so lists them). */
typedef struct mb_tg_entry {
  unsigned id, size, align;
} mb_tg_entry;

typedef struct mb_kernel_info {
  unsigned abi;
  unsigned n_params;
  const mb_param *params;
  unsigned max_total_threads; /* [[max_total_threads_per_threadgroup(n)]], 0 if absent */
  unsigned reserved;
  const mb_tg_entry *tg_begin, *tg_end;
  /* Non-empty when the kernel may call a barrier or a SIMD-group function;
   * otherwise its threads run as a plain loop, without fibers. */
  const char *sync_begin, *sync_end;
  const mb_rt **rt;     /* the runner stores its services here */
  unsigned *tg_offsets; /* ...and each threadgroup variable's arena offset */
} mb_kernel_info;

/* Exported by kernel.so (generated entry file):
 *   const mb_kernel_info mb_kernel_info_v;
 *   void mb_kernel_run(const mb_dispatch *, const mb_group *, mb_cursor *);
 */
typedef void mb_kernel_run_t(const mb_dispatch *, const mb_group *, mb_cursor *);
typedef mb_kernel_run_t *mb_kernel_run_fn;

#ifdef __cplusplus
}
#endif

#endif /* MB_SIM_ABI_H */
