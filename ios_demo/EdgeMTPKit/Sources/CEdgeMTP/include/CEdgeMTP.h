/* Umbrella header of the CEdgeMTP module: the shared C core (native/include/edge_mtp.h, symlinked)
 * and the observer the Swift layer streams progress through. */
#include "edge_mtp.h"
#include "emtp_observe.h"
