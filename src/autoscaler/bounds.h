// The scale bounds in force for one service at `now`: the manifest's [min, max], changed by the
// schedule entries whose window is open (calendar.h; later entries win), each bound then
// replaced by an operator's unexpired `baton scale` override. Pure. The controller, the
// autoscaler loop and the API all answer "which bounds, and who set them" with this one
// function, so `baton ps` shows exactly what the controller acts on.
#pragma once

#include "autoscaler/calendar.h"
#include "model/records.h"

namespace baton::autoscaler {

// `source`: "manifest", "schedule:<name>[,<name>...]" or "override". `until`: the next instant
// the answer may change (a window boundary or the override's expiry). If the result has
// max < min, min is lowered to max (an operator's `--max 0` stops the service).
BoundsInForce boundsInForce(const model::ScaleSpec& scale, const model::ScaleOverride* override_or_null,
                            TimePoint now);

}  // namespace baton::autoscaler
