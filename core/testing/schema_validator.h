#ifndef XRAYSINK_CORE_TESTING_SCHEMA_VALIDATOR_H_
#define XRAYSINK_CORE_TESTING_SCHEMA_VALIDATOR_H_

#include <string_view>

#include "absl/status/status.h"

namespace xraysink::core::testing {

// Validates one segment document against the official X-Ray schema (draft-04, vendored in
// core/testdata). OK, or an error naming the failing keyword and locations.
absl::Status ValidateSegmentDocument(std::string_view json);

}  // namespace xraysink::core::testing

#endif  // XRAYSINK_CORE_TESTING_SCHEMA_VALIDATOR_H_
