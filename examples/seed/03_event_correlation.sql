-- The seed's event-correlation statement, verbatim: it runs as written.

-- Advanced event correlation and business process tracking
WITH event_correlation AS (
  SELECT 
    correlation_id,
    business_process_id,
    
    -- Process timeline tracking
    MIN(event_timestamp) as process_start_time,
    MAX(event_timestamp) as process_end_time,
    TIMESTAMPDIFF(SECOND, MIN(event_timestamp), MAX(event_timestamp)) as process_duration_seconds,
    
    -- Event sequence analysis
    GROUP_CONCAT(
      CONCAT(service_name, ':', event_type, ':', collection_name) 
      ORDER BY event_timestamp 
      SEPARATOR ' -> '
    ) as event_sequence,
    
    COUNT(*) as total_events_in_process,
    COUNT(DISTINCT service_name) as services_involved,
    COUNT(DISTINCT collection_name) as collections_affected,
    
    -- Process completion analysis
    COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) as completed_events,
    COUNT(CASE WHEN processing_status = 'failed' THEN 1 END) as failed_events,
    
    -- Business metrics
    SUM(CAST(JSON_EXTRACT(event_data, '$.order_total') AS DECIMAL(10,2))) as total_order_value,
    COUNT(CASE WHEN event_type = 'insert' AND collection_name = 'orders' THEN 1 END) as orders_created,
    COUNT(CASE WHEN event_type = 'update' AND collection_name = 'inventory' THEN 1 END) as inventory_updates,
    
    -- Process success indicators
    CASE 
      WHEN COUNT(CASE WHEN processing_status = 'failed' THEN 1 END) = 0 
        AND COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) = COUNT(*) 
      THEN 'Success'
      WHEN COUNT(CASE WHEN processing_status = 'failed' THEN 1 END) > 0 THEN 'Failed'
      ELSE 'In Progress'
    END as process_status
    
  FROM CHANGE_STREAM_EVENTS()
  WHERE correlation_id IS NOT NULL
    AND event_timestamp >= DATE_SUB(NOW(), INTERVAL 1 HOUR)
  GROUP BY correlation_id, business_process_id
),

-- Service dependency and interaction analysis
service_interactions AS (
  SELECT 
    source_service,
    target_service,
    interaction_type,
    
    -- Interaction volume and frequency
    COUNT(*) as interaction_count,
    COUNT(*) / (TIMESTAMPDIFF(SECOND, MIN(event_timestamp), MAX(event_timestamp)) / 60.0) as interactions_per_minute,
    
    -- Success and failure rates
    COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) as successful_interactions,
    COUNT(CASE WHEN processing_status = 'failed' THEN 1 END) as failed_interactions,
    ROUND(
      (COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) * 100.0) / COUNT(*), 2
    ) as interaction_success_rate,
    
    -- Performance metrics
    AVG(processing_duration_ms) as avg_interaction_time_ms,
    MAX(processing_duration_ms) as max_interaction_time_ms,
    
    -- Data volume analysis
    AVG(LENGTH(event_data)) as avg_event_size_bytes,
    SUM(LENGTH(event_data)) as total_data_transferred_bytes
    
  FROM CHANGE_STREAM_EVENTS()
  WHERE event_timestamp >= DATE_SUB(NOW(), INTERVAL 24 HOUR)
    AND source_service IS NOT NULL
    AND target_service IS NOT NULL
  GROUP BY source_service, target_service, interaction_type
)

SELECT 
  -- Process correlation summary
  'BUSINESS_PROCESSES' as section,
  JSON_OBJECT(
    'total_processes', COUNT(*),
    'successful_processes', COUNT(CASE WHEN process_status = 'Success' THEN 1 END),
    'failed_processes', COUNT(CASE WHEN process_status = 'Failed' THEN 1 END),
    'in_progress_processes', COUNT(CASE WHEN process_status = 'In Progress' THEN 1 END),
    'avg_process_duration_seconds', AVG(process_duration_seconds),
    'total_business_value', SUM(total_order_value),
    'top_processes', JSON_ARRAYAGG(
      JSON_OBJECT(
        'correlation_id', correlation_id,
        'duration_seconds', process_duration_seconds,
        'services_involved', services_involved,
        'event_sequence', event_sequence,
        'status', process_status
      ) LIMIT 10
    )
  ) as process_analytics
FROM event_correlation

UNION ALL

SELECT 
  -- Service interaction summary
  'SERVICE_INTERACTIONS' as section,
  JSON_OBJECT(
    'total_interactions', SUM(interaction_count),
    'service_pairs', COUNT(*),
    'avg_success_rate', AVG(interaction_success_rate),
    'total_data_transferred_mb', SUM(total_data_transferred_bytes) / 1024 / 1024,
    'interaction_details', JSON_ARRAYAGG(
      JSON_OBJECT(
        'source_service', source_service,
        'target_service', target_service,
        'interaction_count', interaction_count,
        'success_rate', interaction_success_rate,
        'avg_time_ms', avg_interaction_time_ms
      )
    )
  ) as interaction_analytics
FROM service_interactions;
