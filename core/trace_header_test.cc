#include "core/trace_header.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace xraysink::core {
namespace {

constexpr char kT[] = "1-5759e988-bd862e3fe1be46a994272793";
constexpr char kP[] = "53995c3f42cd8ad8";

TraceHeader MustParse(const std::string& value) {
  absl::StatusOr<TraceHeader> header = TraceHeader::Parse(value);
  EXPECT_TRUE(header.ok()) << value << ": " << header.status().message();
  return header.ok() ? *header : TraceHeader{};
}

std::string T() { return kT; }
std::string P() { return kP; }

// Spec 8.1, with the port's (Node) rules where they differ from Py.
TEST(TraceHeaderTest, SdkVectors) {
  TraceHeader h = MustParse("Root=" + T() + ";Parent=" + P() + ";Sampled=1");
  EXPECT_EQ(h.root->view(), kT);
  EXPECT_EQ(h.parent->ToString(), kP);
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);
  EXPECT_EQ(h.ToString(), "Root=" + T() + ";Parent=" + P() + ";Sampled=1");

  h = MustParse("Root=" + T() + ";Sampled=?");
  EXPECT_FALSE(h.parent);
  EXPECT_EQ(h.sampled, SampledFlag::kRequested);
  EXPECT_EQ(h.ToString(), "Root=" + T() + ";Sampled=?");

  EXPECT_EQ(MustParse("Root=" + T() + ";Parent=" + P()).ToString(),
            "Root=" + T() + ";Parent=" + P());

  h = MustParse("Root=" + T() + ";k1=v1;k2=v2");
  ASSERT_EQ(h.extra.size(), 2u);
  EXPECT_EQ(h.ExtraKeys(), "k1=v1;k2=v2");
  EXPECT_EQ(h.ToString(), "Root=" + T() + ";k1=v1;k2=v2");

  EXPECT_FALSE(TraceHeader::Parse("some invalid string").ok());

  EXPECT_EQ(MustParse("  Root=" + T() + ";Sampled=?  ").ToString(), "Root=" + T() + ";Sampled=?");

  h = MustParse("Root=" + T() + ";Self=1-67891233-abcdef012345678912345678;Sampled=0");
  EXPECT_TRUE(h.extra.empty());
  EXPECT_EQ(h.ToString(), "Root=" + T() + ";Sampled=0");

  const std::string lineage = "Root=" + T() + ";Parent=" + P() + ";Sampled=0;Lineage=10:1234abcd:3";
  EXPECT_EQ(MustParse(lineage).ToString(), lineage);

  h = MustParse("Root=" + T() + ";Sampled=2");
  EXPECT_EQ(h.sampled, SampledFlag::kUnknown);
  EXPECT_EQ(h.ToString(), "Root=" + T());

  EXPECT_EQ(MustParse("Root=" + T() + ";").ToString(), "Root=" + T());  // trailing ;

  h = MustParse("Root=" + T() + "; Parent=" + P() + "; Sampled=1");
  EXPECT_EQ(h.parent->ToString(), kP);
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);

  h = MustParse("root=" + T() + ";sampled=1");
  EXPECT_EQ(h.root->view(), kT);
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);

  h = MustParse("Root=" + T() + ";k1=v1=x");  // split at the first '='
  EXPECT_EQ(h.extra[0].second, "v1=x");
}

TEST(TraceHeaderTest, InvalidIdsAreTreatedAsAbsent) {
  TraceHeader h = MustParse("Root=1-xyz;Parent=123;Sampled=1");
  EXPECT_FALSE(h.root);
  EXPECT_FALSE(h.parent);
  EXPECT_EQ(h.sampled, SampledFlag::kSampled);
  h = MustParse("Root=" + T() + ";Parent=0000000000000000");
  EXPECT_FALSE(h.parent);
  h = MustParse("Root=1-00000000-000000000000000000000000;Parent=" + P() + ";Sampled=0");
  EXPECT_FALSE(h.root);  // Python's no-op id for unsampled requests
  EXPECT_EQ(h.sampled, SampledFlag::kNotSampled);
  h = MustParse("Root=1-5759E988-BD862E3FE1BE46A994272793");  // upper case is normalised
  EXPECT_EQ(h.root->view(), kT);
}

TEST(TraceHeaderTest, RepeatedKeyLastWins) {
  TraceHeader h = MustParse("Sampled=1;Root=" + T() + ";SAMPLED=0");
  EXPECT_EQ(h.sampled, SampledFlag::kNotSampled);
  EXPECT_EQ(h.ToString(), "Root=" + T() + ";Sampled=0");
}

TEST(TraceHeaderTest, MalformedValuesFailWithAReason) {
  for (const std::string& bad :
       {std::string(""), std::string(";;;"), std::string("Root"), "Root=" + T() + ";garbage",
        "Root=" + T() + "\n;Sampled=1", "Root=" + T() + ";k=\xc3\xa9", "Root=" + T() + ";k=\x7f",
        std::string("Lineage=1:2:3"), std::string("Root=garbage"),
        std::string("Parent=0000000000000000"), std::string("=1"),
        "Root=" + T() + ";" + std::string(kMaxTraceHeaderLength, 'a') + "=1"}) {
    absl::StatusOr<TraceHeader> header = TraceHeader::Parse(bad);
    EXPECT_FALSE(header.ok()) << bad;
    if (!header.ok()) {
      EXPECT_FALSE(header.status().message().empty());
    }
  }
  EXPECT_NE(TraceHeader::Parse("some invalid string").status().message().find("no '='"),
            absl::string_view::npos);
}

TEST(TraceHeaderTest, LengthLimit) {
  const std::string root = "Root=" + T();
  EXPECT_TRUE(
      TraceHeader::Parse(root + std::string(kMaxTraceHeaderLength - root.size(), ' ')).ok());
  EXPECT_FALSE(
      TraceHeader::Parse(root + std::string(kMaxTraceHeaderLength + 1 - root.size(), ' ')).ok());
  const absl::StatusOr<TraceHeader> huge =
      TraceHeader::Parse(root + ";" + std::string(1 << 20, 'x') + "=1");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("longer than"), absl::string_view::npos);
}

TEST(TraceHeaderTest, ExtraKeysAreBounded) {
  // `k=<253 bytes>;` is exactly kMaxExtraKeysBytes: kept; one byte more: dropped.
  const std::string fits(kMaxExtraKeysBytes - 3, 'v');
  EXPECT_EQ(MustParse("Root=" + T() + ";k=" + fits).ExtraKeys(), "k=" + fits);
  EXPECT_EQ(MustParse("Root=" + T() + ";k=" + fits + "v").ExtraKeys(), "");

  std::string value = "Root=" + T();
  for (int i = 0; i < 100; ++i) value += ";key" + std::to_string(i) + "=value";
  const TraceHeader h = MustParse(value);
  EXPECT_LE(h.ExtraKeys().size() + 1, kMaxExtraKeysBytes);
  ASSERT_FALSE(h.extra.empty());
  EXPECT_EQ(h.extra.back().first, "key" + std::to_string(h.extra.size() - 1));  // a prefix

  // Once one does not fit, later ones are dropped too (the forwarded keys stay a prefix).
  EXPECT_EQ(MustParse("Root=" + T() + ";a=1;big=" + fits + ";b=2").ExtraKeys(), "a=1");
}

TEST(TraceHeaderTest, OutgoingHeader) {
  std::string out;
  TraceHeader::AppendOutgoing(*TraceId::Parse(kT), *EntityId::Parse(kP), true, "", out);
  EXPECT_EQ(out, "Root=" + T() + ";Parent=" + P() + ";Sampled=1");
  out.clear();
  TraceHeader::AppendOutgoing(*TraceId::Parse(kT), *EntityId::Parse(kP), false, "Lineage=a:1", out);
  EXPECT_EQ(out, "Root=" + T() + ";Parent=" + P() + ";Sampled=0;Lineage=a:1");
}

// Anything parsed re-serialises to a value that parses to the same string again.
void CheckRoundTrip(const std::string& value) {
  const absl::StatusOr<TraceHeader> header = TraceHeader::Parse(value);
  if (!header.ok()) return;
  const std::string text = header->ToString();
  if (!header->root && !header->parent && header->sampled == SampledFlag::kUnknown) return;
  const absl::StatusOr<TraceHeader> again = TraceHeader::Parse(text);
  ASSERT_TRUE(again.ok()) << value << " -> " << text;
  EXPECT_EQ(again->ToString(), text) << value;
}

TEST(TraceHeaderTest, RandomGarbageNeverCrashes) {
  std::mt19937 random(7);
  const std::string alphabet = "Root=Parent;Sampled?01-abcdef \t=;;\x01\xff";
  for (int i = 0; i < 20000; ++i) {
    std::string value(random() % 120, ' ');
    for (char& c : value) c = alphabet[random() % alphabet.size()];
    CheckRoundTrip(value);
  }
  // Mutations of a valid header: flip, insert and delete bytes.
  const std::string valid =
      "Root=" + T() + ";Parent=" + P() + ";Sampled=1;Lineage=10:1234abcd:3;Self=x";
  for (int i = 0; i < 20000; ++i) {
    std::string value = valid;
    for (int edits = 1 + random() % 4; edits > 0 && !value.empty(); --edits) {
      const size_t at = random() % value.size();
      const char byte = static_cast<char>(random() % 256);
      switch (random() % 3) {
        case 0:
          value[at] = byte;
          break;
        case 1:
          value.insert(at, 1, byte);
          break;
        default:
          value.erase(at, 1);
          break;
      }
    }
    CheckRoundTrip(value);
  }
}

}  // namespace
}  // namespace xraysink::core
