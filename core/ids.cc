#include "core/ids.h"

#include <sys/random.h>
#include <time.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "core/internal/after_fork.h"

namespace xraysink::core {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

inline uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// xoshiro256**: fast, good statistical quality, one instance per thread.
class Xoshiro256 {
 public:
  Xoshiro256() {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != static_cast<ssize_t>(sizeof(seed))) {
      seed = static_cast<uint64_t>(
                 std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
             std::hash<std::thread::id>()(std::this_thread::get_id()) ^
             reinterpret_cast<uintptr_t>(this);
    }
    for (uint64_t& word : state_) word = SplitMix64(seed);
  }

  uint64_t Next() {
    const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = RotateLeft(state_[3], 45);
    return result;
  }

 private:
  uint64_t state_[4];
};

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static_assert(std::endian::native == std::endian::little, "HexDigits byte-swaps for memory order");

// The 8 lowercase hex digits of `value`, most significant first, in memory order: every
// request's trace id is 32 digits, which a digit-by-digit loop takes ~9 instructions each for.
uint64_t HexDigits(uint32_t value) {
  uint64_t x = value;
  // One nibble per byte, the most significant in the highest byte.
  x = ((x & 0x00000000ffff0000ULL) << 16) | (x & 0x000000000000ffffULL);
  x = ((x & 0x0000ff000000ff00ULL) << 8) | (x & 0x000000ff000000ffULL);
  x = ((x & 0x00f000f000f000f0ULL) << 4) | (x & 0x000f000f000f000fULL);
  // 0x01 in the bytes that hold 10..15, which become 'a'..'f' instead of '0' + n.
  const uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
  return __builtin_bswap64(x);
}

#if defined(__SSE2__)
// The 16 lowercase hex digits of the low 8 bytes of `bytes`, first byte first, each byte's high
// nibble before its low one.
inline __m128i HexDigits16(__m128i bytes) {
  const __m128i nibble = _mm_set1_epi8(0x0f);
  const __m128i high = _mm_and_si128(_mm_srli_epi16(bytes, 4), nibble);
  const __m128i low = _mm_and_si128(bytes, nibble);
  const __m128i digits = _mm_unpacklo_epi8(high, low);  // high, low of byte 0, then byte 1, ...
  const __m128i letters = _mm_cmpgt_epi8(digits, _mm_set1_epi8(9));
  return _mm_add_epi8(_mm_add_epi8(digits, _mm_set1_epi8('0')),
                      _mm_and_si128(letters, _mm_set1_epi8('a' - '0' - 10)));
}
#endif

void WriteHex(uint64_t value, int digits, char* out) {
#if defined(__SSE2__)
  // Every request's trace id is 32 digits: 16 at a time in a vector register (SSE2 is in every
  // x86-64 CPU).
  if (digits == 16) {
    const __m128i bytes = _mm_cvtsi64_si128(static_cast<long long>(__builtin_bswap64(value)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), HexDigits16(bytes));
    return;
  }
  if (digits == 8) {
    const __m128i bytes =
        _mm_cvtsi32_si128(static_cast<int>(__builtin_bswap32(static_cast<uint32_t>(value))));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out), HexDigits16(bytes));
    return;
  }
#endif
  if (digits == 16) {
    const uint64_t high = HexDigits(static_cast<uint32_t>(value >> 32));
    const uint64_t low = HexDigits(static_cast<uint32_t>(value));
    std::memcpy(out, &high, 8);
    std::memcpy(out + 8, &low, 8);
  } else if (digits == 8) {
    const uint64_t text = HexDigits(static_cast<uint32_t>(value));
    std::memcpy(out, &text, 8);
  } else {
    for (int i = digits - 1; i >= 0; --i) {
      out[i] = kHexDigits[value & 0xf];
      value >>= 4;
    }
  }
}

// A generator seeded before a fork would give the child the ids its parent goes on to make, and
// every worker of a pre-forking server the same ones: a thread's generator seeds itself again
// when the fork count has moved.
struct ThreadGenerator {
  Xoshiro256 generator;
  uint32_t seeded_after = internal::ForksAsChild();
};

}  // namespace

namespace internal {
uint64_t RandomU64() {
  thread_local ThreadGenerator state;
  if (const uint32_t forks = ForksAsChild(); forks != state.seeded_after) [[unlikely]] {
    state.generator = Xoshiro256();
    state.seeded_after = forks;
  }
  return state.generator.Next();
}
}  // namespace internal

EntityId EntityId::Generate() {
  uint64_t value;
  do {
    value = internal::RandomU64();
  } while (value == 0);
  return EntityId(value);
}

std::optional<EntityId> EntityId::Parse(std::string_view text) {
  if (text.size() != kLength) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    const int digit = HexValue(c);
    if (digit < 0) return std::nullopt;
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  return EntityId(value);
}

void EntityId::WriteTo(char* out) const { WriteHex(value_, kLength, out); }

std::string EntityId::ToString() const {
  std::string text(kLength, '0');
  WriteTo(text.data());
  return text;
}

TraceId TraceId::Generate() {
  // Only the second counts: the coarse clock (at most a tick behind) reads no hardware counter,
  // and every unsampled request pays for this call.
  timespec now;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  return GenerateAt(static_cast<uint32_t>(now.tv_sec));
}

TraceId TraceId::GenerateAt(uint32_t epoch_seconds) {
  TraceId id;
  id.text_[0] = '1';
  id.text_[1] = '-';
  WriteHex(epoch_seconds, 8, id.text_ + 2);
  id.text_[10] = '-';
  WriteHex(internal::RandomU64(), 16, id.text_ + 11);
  WriteHex(internal::RandomU64(), 8, id.text_ + 27);
  return id;
}

std::optional<TraceId> TraceId::Parse(std::string_view text) {
  if (text.size() != kLength || text[0] != '1' || text[1] != '-' || text[10] != '-') {
    return std::nullopt;
  }
  TraceId id;
  std::memcpy(id.text_, text.data(), kLength);
  for (int i = 2; i < kLength; ++i) {
    if (i == 10) continue;
    const int digit = HexValue(text[i]);
    if (digit < 0) return std::nullopt;
    id.text_[i] = kHexDigits[digit];
  }
  return id;
}

uint32_t TraceId::epoch_seconds() const {
  if (empty()) return 0;
  uint32_t value = 0;
  for (int i = 2; i < 10; ++i) value = (value << 4) | static_cast<uint32_t>(HexValue(text_[i]));
  return value;
}

}  // namespace xraysink::core
