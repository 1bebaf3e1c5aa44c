// Qt metatype declarations for core's plain event types so they can travel in
// signals (queued ones included) and QVariants. Declarations only: the types live
// in core/run/events.h and stay Qt-free.
#pragma once

#include <QMetaType>
#include <vector>

#include "core/run/events.h"

Q_DECLARE_METATYPE(wb::MetricSample)
Q_DECLARE_METATYPE(std::vector<wb::MetricSample>)
Q_DECLARE_METATYPE(wb::LogLine)
Q_DECLARE_METATYPE(wb::Progress)
Q_DECLARE_METATYPE(wb::RunStatus)
