//! goip simulator
