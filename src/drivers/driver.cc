#include "drivers/driver.h"

namespace baton::drivers {

void DriverRegistry::add(std::unique_ptr<Driver> driver) {
  std::string name = driver->name();
  drivers_[name] = std::move(driver);
}

Driver* DriverRegistry::find(const std::string& name) const {
  auto it = drivers_.find(name);
  return it == drivers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> DriverRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : drivers_) out.push_back(name);
  return out;
}

}  // namespace baton::drivers
