#include "autoscaler/bounds.h"

#include <algorithm>

namespace baton::autoscaler {

BoundsInForce boundsInForce(const model::ScaleSpec& scale, const model::ScaleOverride* o,
                            TimePoint now) {
  BoundsInForce b = scale.schedule.empty()
                        ? BoundsInForce{scale.min, scale.max, "manifest", std::nullopt}
                        : Calendar(scale).at(now);
  if (o && (!o->expires_at || *o->expires_at > now) && (o->min || o->max)) {
    if (o->min) b.min = *o->min;
    if (o->max) b.max = *o->max;
    b.source = "override";
    if (o->expires_at && (!b.until || *o->expires_at < *b.until)) b.until = o->expires_at;
  }
  b.min = std::max(0, b.min);
  b.max = std::max(0, b.max);
  if (b.max < b.min) b.min = b.max;
  return b;
}

}  // namespace baton::autoscaler
