-- QueryLeaf event-driven microservices with SQL-familiar syntax

-- Create event subscription with comprehensive configuration
CREATE EVENT_SUBSCRIPTION user_service_events AS (
  -- Subscription identification
  subscription_id = 'user_lifecycle_events',
  service_name = 'user_service',
  
  -- Event source configuration
  watch_collections = JSON_ARRAY('users', 'user_profiles', 'user_preferences'),
  event_types = JSON_ARRAY('insert', 'update', 'delete'),
  
  -- Advanced event filtering with SQL-style conditions
  event_filter = JSON_OBJECT(
    'operationType', JSON_OBJECT('$in', JSON_ARRAY('insert', 'update')),
    '$or', JSON_ARRAY(
      JSON_OBJECT('operationType', 'insert'),
      JSON_OBJECT(
        'operationType', 'update',
        'updateDescription.updatedFields', JSON_OBJECT(
          '$or', JSON_ARRAY(
            JSON_OBJECT('email', JSON_OBJECT('$exists', true)),
            JSON_OBJECT('status', JSON_OBJECT('$exists', true)),
            JSON_OBJECT('subscription_tier', JSON_OBJECT('$exists', true))
          )
        )
      )
    )
  ),
  
  -- Event processing configuration
  batch_processing = false,
  preserve_order = true,
  full_document = 'updateLookup',
  full_document_before_change = 'whenAvailable',
  
  -- Error handling and retry policy
  max_retry_attempts = 3,
  retry_delay_ms = 1000,
  exponential_backoff = true,
  dead_letter_queue_enabled = true,
  
  -- Performance settings
  batch_size = 100,
  processing_timeout_ms = 30000,
  
  -- Subscription metadata
  created_by = 'user_service_admin',
  description = 'User lifecycle events for authentication and personalization services'
);
