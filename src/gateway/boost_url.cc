// Boost.URL's compiled part, built into this library (Debian 12 ships Boost.URL as headers only).
#include <boost/url/src.hpp>
