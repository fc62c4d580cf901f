// KvCache rollback rules on a model with sliding-window layers: a cut is bounded by what the rings
// still hold, counted from the highest position ever written (not from the current length), and a
// copied prefix inherits its source's bound.
#include "model/kv_cache.h"

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"
#include "model/model.h"
#include "support/test_support.h"

namespace gemma {
namespace {

TEST(KvCache, RollbackCountsFromTheHighWaterMark) {
  auto m = Model::load(test::fixture("models/gemma3_tiny/model.f32.gguf"));
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_GT((*m)->config().sliding_window, 0);
  CpuBackend be(1);
  auto cache = KvCache::create(be, (*m)->config(), 256, 8, DType::F32);
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  KvCache& c = **cache;
  const int limit = c.rollback_limit();
  ASSERT_EQ(limit, 8);  // max(chunk, max_rollback): the ring's spare slots

  c.advance(40);
  EXPECT_TRUE(c.can_truncate_to(40 - limit));
  EXPECT_FALSE(c.can_truncate_to(40 - limit - 1));
  EXPECT_FALSE(c.truncate(40 - limit - 1).ok());
  EXPECT_EQ(c.n_past(), 40);  // a refused cut changes nothing

  // Cut back 6 and extend by 4: the ring slots of positions 34..37 were overwritten by the new 34..37,
  // so a second cut is still bounded by 40 - limit even though n_past is only 38.
  ASSERT_TRUE(c.truncate(34).ok());
  c.advance(4);
  EXPECT_EQ(c.n_past(), 38);
  EXPECT_TRUE(c.can_truncate_to(40 - limit));
  EXPECT_FALSE(c.can_truncate_to(38 - limit));  // what n_past alone would have allowed
  EXPECT_FALSE(c.truncate(38 - limit).ok());
  EXPECT_TRUE(c.can_truncate_to(38));  // not a cut at all

  // A prefix copied from this cache carries the same bound.
  auto copy = KvCache::create(be, (*m)->config(), 256, 8, DType::F32);
  ASSERT_TRUE(copy.ok());
  ASSERT_TRUE((*copy)->copy_prefix_from(c, 36).ok());
  EXPECT_EQ((*copy)->n_past(), 36);
  EXPECT_TRUE((*copy)->can_truncate_to(40 - limit));
  EXPECT_FALSE((*copy)->can_truncate_to(40 - limit - 1));
  // Copying a prefix the source's rings no longer hold is refused.
  auto copy2 = KvCache::create(be, (*m)->config(), 256, 8, DType::F32);
  ASSERT_TRUE(copy2.ok());
  EXPECT_FALSE((*copy2)->copy_prefix_from(c, 40 - limit - 1).ok());

  c.clear();
  c.advance(5);
  EXPECT_TRUE(c.can_truncate_to(0));  // clear() forgets the mark
}

}  // namespace
}  // namespace gemma
