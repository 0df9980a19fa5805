#include "core/clock.h"

namespace baton {

SystemClock& SystemClock::instance() {
  static SystemClock clock;
  return clock;
}

}  // namespace baton
