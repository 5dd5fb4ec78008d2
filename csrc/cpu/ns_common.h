// Shared declarations of the CPU Newton–Schulz kernel (csrc/cpu/newton_schulz.cpp): the argument
// blocks of the two blocked-matmul tasks and the table of ISA-specific task functions. The task
// bodies live in ns_impl.h, which newton_schulz.cpp compiles once per instruction set.
#pragma once

#include <cstdint>

namespace pykernels::cpu::ns {

// C = alpha * S S^T + beta * D for every matrix of the batch. S is (m, K) row-major with leading
// dimension ldS; C and D are (m, m). Only block pairs (bi <= bj) of the upper triangle are computed,
// and each task mirrors its block into the lower triangle, so C comes out full and exactly symmetric.
// D may be null (then beta is ignored). sym_src says that S itself is symmetric (S = S^T, so K == m):
// the packed right operand is then built from row copies instead of a transpose.
template <typename T>
struct SymArgs {
  const T* S;
  int64_t ldS, sS;  // sX: element stride between consecutive matrices of the batch
  T* C;
  int64_t ldC, sC;
  const T* D;
  int64_t ldD, sD;
  T alpha, beta;
  int64_t batch, m, K;
  int64_t bs;  // square block size (multiple of the micro-tile sizes)
  int64_t kc;  // depth of one packed chunk
  bool sym_src;
  const int32_t* pairs;  // npairs (bi, bj) block pairs, heaviest first; task t = pair * batch + b
  int64_t npairs;
};

// X = beta * X + B X in place for every matrix of the batch: B is (m, m), X is (m, n). A task owns a
// block of nc columns of one matrix over all m rows, packs it first (that copy also feeds the
// beta * X term), so writing the result in place is race-free. Task t = column_block * batch + b.
template <typename T>
struct NNArgs {
  const T* B;
  int64_t ldB, sB;
  T* X;
  int64_t ldX, sX;
  T beta;
  int64_t batch, m, n;
  int64_t nc;  // columns per task (multiple of NR)
  int64_t kc;  // depth of one chunk over the m rows of X
};

template <typename T>
struct Kernels {
  void (*sym_task)(const SymArgs<T>&, int64_t task, T* workspace);
  void (*nn_task)(const NNArgs<T>&, int64_t task, T* workspace);
  int mr, nr;       // micro-tile: mr rows x nr columns
  const char* isa;  // "avx512" | "avx2" | "generic"
};

}  // namespace pykernels::cpu::ns
